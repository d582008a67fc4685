"""Hits across reference datasets: are a query cell's hits spread over the reference's datasets as their sizes are?

The Cell BLAST paper (Supp. Fig. 9e; Results: "the hits returned by Cell
BLAST are more evenly distributed across multiple reference datasets ...,
further confirming better mitigation of batch effect") compares how the
methods' hits fall into the datasets of a multi-dataset reference. The paper
gives no formula; this module's is:

- the **units** are the reference's datasets (obs column ``dataset``) when it
  has at least two, else the values of the group's first batch key (e.g.
  the studies of a single simulated dataset) when it has at least two, else
  the group has no units to compare (:func:`hit_unit_key` is None);
- for query cell q with hits in units d = 1 .. D (D the reference's number of
  units), p_qd is the fraction of q's hits in unit d and s_d the fraction of
  reference cells in unit d;
- the size-adjusted hit distribution is w_qd = (p_qd / s_d) / sum_e (p_qe / s_e),
  and the cell's **normalised entropy** is

      H_q = - sum_d w_qd log(w_qd) / log(D)      (0 log 0 = 0),

  1 when q's hits fall into the units in proportion to their sizes (w
  uniform), 0 when all fall into one unit; a cell without hits has none;
- a run's ``entropy`` is the mean of H_q over its query cells with hits; its
  pooled ``hit_fraction`` of a unit is the unit's share of all the run's hits,
  and ``ratio`` = hit_fraction / size_fraction (1: as often as its size says).

``scipy.stats.entropy`` normalises w and takes the logarithm in base D.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.summary import RUN_COLUMNS

DATASET_KEY = "dataset"
HIT_DATASET_COLUMNS = RUN_COLUMNS + [
    "unit_key", "unit", "n_reference", "size_fraction", "n_hits", "hit_fraction", "ratio", "entropy", "n_query_cells",
]


def hit_unit_key(reference_obs: pd.DataFrame, batch_key: str | None) -> str | None:
    """The obs column whose values are the units hits are counted in: ``dataset``, else ``batch_key``, else None.

    A column counts only when it has at least two different values in the reference.
    """
    for key in (DATASET_KEY, batch_key):
        if key is not None and key in reference_obs and reference_obs[key].astype(str).nunique() >= 2:
            return key
    return None


def unit_hit_counts(indices: np.ndarray, reference_units: np.ndarray, units: np.ndarray) -> np.ndarray:
    """(n_query, len(units)) number of each query cell's hits (``indices`` >= 0) in each unit."""
    indices = np.asarray(indices)
    reference_units = np.asarray(reference_units, dtype=str)
    if indices.size and indices.max() >= len(reference_units):
        raise InputError(f"hit datasets: hit index {int(indices.max())} but the reference has {len(reference_units)} cells")
    code = {unit: j for j, unit in enumerate(units)}
    unit_of = np.array([code[u] for u in reference_units], dtype=np.int64)
    counts = np.zeros((len(indices), len(units)), dtype=np.int64)
    rows, cols = np.nonzero(indices >= 0)
    np.add.at(counts, (rows, unit_of[indices[rows, cols]]), 1)
    return counts


def size_adjusted_entropy(counts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per row of ``counts`` (hits per unit): the normalised entropy H_q of the module docstring (NaN without hits)."""
    from scipy.stats import entropy

    counts = np.asarray(counts, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != len(sizes) or len(sizes) < 2 or (sizes <= 0).any():
        raise InputError(f"hit datasets: need hit counts over >= 2 units of positive size, got {counts.shape} and sizes {sizes}")
    total = counts.sum(axis=1)
    adjusted = np.divide(counts, total[:, None], out=np.zeros_like(counts), where=total[:, None] > 0) / (sizes / sizes.sum())
    out = np.full(len(counts), np.nan)
    has_hits = total > 0
    out[has_hits] = entropy(adjusted[has_hits], base=len(sizes), axis=1)
    return out


def hit_datasets(indices: np.ndarray, reference_obs: pd.DataFrame, unit_key: str, *, run: dict) -> pd.DataFrame:
    """One row per reference unit (:data:`HIT_DATASET_COLUMNS`): its size, the run's hits in it, and the run's entropy.

    ``indices``: every query cell's hits (reference rows, -1 for none);
    ``unit_key``: the obs column of the units (:func:`hit_unit_key`).
    """
    reference_units = reference_obs[unit_key].astype(str).to_numpy()
    units, sizes = np.unique(reference_units, return_counts=True)
    counts = unit_hit_counts(indices, reference_units, units)
    entropies = size_adjusted_entropy(counts, sizes)
    pooled = counts.sum(axis=0)
    hit_fraction = pooled / pooled.sum() if pooled.sum() else np.full(len(units), np.nan)
    size_fraction = sizes / sizes.sum()
    has_hits = np.isfinite(entropies)
    table = pd.DataFrame({
        "unit_key": unit_key, "unit": units, "n_reference": sizes, "size_fraction": size_fraction, "n_hits": pooled,
        "hit_fraction": hit_fraction, "ratio": hit_fraction / size_fraction,
        "entropy": float(entropies[has_hits].mean()) if has_hits.any() else np.nan, "n_query_cells": int(has_hits.sum()),
    })
    for key in RUN_COLUMNS:
        table[key] = run[key]
    return table[HIT_DATASET_COLUMNS]
