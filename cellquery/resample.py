"""Seeds as independent experiments: each seed redraws the group's reference and query cells.

A group declares ``resample: {reference_fraction, query_fraction}``; seed s
keeps a label-stratified random subsample of each (every cell type keeps the
fraction, at least one cell), drawn with its own random stream for the
reference and for the query. The draw depends only on the data and the seed,
so seed 0 of two configs that differ only in their methods holds the same
cells, and a method's spread over seeds includes the spread of the data, as
the repeated query experiments of the Cell BLAST paper (Fig. 2c) do.
"""

from __future__ import annotations

import anndata as ad
import numpy as np

from cellquery.errors import InputError

# Random streams of one seed: reference and query are drawn independently.
REFERENCE_STREAM, QUERY_STREAM = 0, 1


def label_sample_size(count: int, fraction: float) -> int:
    """How many of a label's ``count`` cells a stratified subsample keeps: the fraction, at least one."""
    return max(1, int(round(fraction * count)))


def stratified_rows(labels, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted row positions of a subsample keeping ``fraction`` of every label (at least one cell each)."""
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"config: groups.<name>.resample: fractions must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    if fraction == 1.0:
        return np.arange(len(labels))
    kept = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        kept.append(rng.choice(rows, size=label_sample_size(len(rows), fraction), replace=False))
    return np.sort(np.concatenate(kept)) if kept else np.arange(0)


def resample_group(
    reference: ad.AnnData,
    query: ad.AnnData,
    *,
    label_key: str,
    seed: int,
    reference_fraction: float = 1.0,
    query_fraction: float = 1.0,
) -> tuple[ad.AnnData, ad.AnnData]:
    """Seed ``seed``'s label-stratified subsamples of reference and query (fractions 1: unchanged)."""
    parts = []
    for adata, fraction, stream in ((reference, reference_fraction, REFERENCE_STREAM), (query, query_fraction, QUERY_STREAM)):
        rows = stratified_rows(adata.obs[label_key].astype(str).to_numpy(), fraction, np.random.default_rng([int(seed), stream]))
        parts.append(adata if len(rows) == adata.n_obs else adata[rows].copy())
    return parts[0], parts[1]
