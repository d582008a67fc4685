"""Jensen–Shannon divergence between true and predicted cell-fate distributions.

The Cell BLAST paper (Cao et al. 2020, Nat. Commun. 11, 3458), Methods, scores
the transfer of cell-fate probabilities (haematopoietic progenitors of Tusi et
al. 2018) by the Jensen–Shannon divergence of each query cell's predicted fate
distribution q from its true one p:

JSD(p‖q) = ½ Σ_i [ p_i log(p_i / m_i) + q_i log(q_i / m_i) ],  m = (p + q) / 2,

natural log, so 0 ≤ JSD ≤ log 2; terms with p_i = 0 (or q_i = 0) contribute 0.
:func:`scipy.spatial.distance.jensenshannon` computes the Jensen–Shannon
*distance*, the square root of this divergence; it is squared here.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon

from cellquery.errors import InputError


def _as_distributions(x, field: str) -> np.ndarray:
    """Non-negative finite (m,) or (n, m) array with no all-zero row (not yet normalised)."""
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
    if (arr.sum(axis=-1) <= 0).any():
        raise InputError(f"{field}: a row sums to 0, cannot normalise")
    return arr


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
    # For two almost identical rows rounding can leave a divergence of about
    # -1e-17, whose square root is NaN: that divergence is 0.
    with np.errstate(invalid="ignore"):
        distance = jensenshannon(P, Q, axis=-1)
    return np.asarray(np.nan_to_num(distance, nan=0.0) ** 2)
