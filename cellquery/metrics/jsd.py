"""Jensen–Shannon divergence between true and predicted cell-fate distributions.

Cell BLAST paper, Methods ("Tusi" cell fate transfer):
JSD(p‖q) = ½ Σ_i [ p_i log(p_i / m_i) + q_i log(q_i / m_i) ],  m = (p + q) / 2,
natural log, so 0 ≤ JSD ≤ log 2. Terms with p_i = 0 (or q_i = 0) contribute 0
(0 · log 0 = 0), handled by :func:`scipy.special.rel_entr`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import rel_entr

from cellquery.errors import InputError


def _as_distributions(x, field: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{field}: not numeric ({exc})") from exc
    if arr.ndim not in (1, 2):
        raise InputError(f"{field}: expected a 1-D or 2-D (cells x fates) array, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{field}: empty array")
    if not np.isfinite(arr).all():
        raise InputError(f"{field}: contains NaN or infinite values")
    if (arr < 0).any():
        raise InputError(f"{field}: contains negative values")
    sums = arr.sum(axis=-1, keepdims=True)
    if (sums <= 0).any():
        raise InputError(f"{field}: a row sums to 0, cannot normalise")
    return arr / sums


def jensen_shannon_divergence(p, q) -> np.ndarray:
    """Row-wise JSD of two sets of distributions.

    Parameters
    ----------
    p, q
        (n, m) non-negative arrays (or (m,) for one pair); each row is normalised
        to sum 1.

    Returns
    -------
    numpy.ndarray
        (n,) divergences (shape () for 1-D input), in nats.
    """
    P = _as_distributions(p, "p")
    Q = _as_distributions(q, "q")
    if P.shape != Q.shape:
        raise InputError(f"q: shape {Q.shape} does not match p's {P.shape}")
    M = 0.5 * (P + Q)
    return np.asarray(0.5 * (rel_entr(P, M).sum(axis=-1) + rel_entr(Q, M).sum(axis=-1)))
