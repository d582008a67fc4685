"""MAP and Seurat alignment of large embeddings on a seeded subsample whose size and K are reported.

MAP takes K = 1 % of the cells as neighbours of every cell (Cell BLAST
Methods, "Benchmarking dimension reduction"); at 10^7 cells that is 10^5
neighbours for each of 10^7 cells. Above ``max_cells`` cells the metrics are
computed on ``max_cells`` cells drawn uniformly without replacement (numpy
``default_rng(seed)``, rows sorted), so that K = 1 % of the subsample; the
subsample's size and K are returned beside each value (``<metric>_n_cells``,
``<metric>_k``) so that numbers from different sizes are not compared as if
they were alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.metrics.alignment import seurat_alignment_score
from cellquery.metrics.map_score import map_from_embedding

DEFAULT_MAX_CELLS = 50_000


def subsample_rows(n: int, max_cells: int | None, seed: int = 0) -> np.ndarray:
    """Sorted rows of a seeded uniform subsample of ``max_cells`` of ``n`` cells (all rows when ``n <= max_cells``)."""
    if max_cells is None or n <= max_cells:
        return np.arange(n)
    if max_cells < 2:
        raise InputError(f"metrics_max_cells = {max_cells}: give at least 2")
    return np.sort(np.random.default_rng([int(seed), 17]).choice(n, size=int(max_cells), replace=False))


def _k(k_frac: float, n: int) -> int:
    return min(n - 1, max(1, int(round(k_frac * n))))


def map_at_scale(X, labels, *, max_cells: int | None = DEFAULT_MAX_CELLS, seed: int = 0, k_frac: float = 0.01) -> dict:
    """``map``, ``map_n_cells`` (the cells it was computed on) and ``map_k`` (their K)."""
    rows = subsample_rows(len(X), max_cells, seed)
    labels = np.asarray(labels)
    return {
        "map": map_from_embedding(np.asarray(X)[rows], labels[rows], k_frac=k_frac),
        "map_n_cells": float(len(rows)),
        "map_k": float(_k(k_frac, len(rows))),
    }


def seurat_alignment_at_scale(X, batches, *, max_cells: int | None = DEFAULT_MAX_CELLS, seed: int = 0,
                              k_frac: float = 0.01) -> dict:
    """``seurat_alignment`` on the subsample, ``seurat_alignment_n_cells`` (its balanced subsample) and ``_k``.

    The score itself draws a balanced subsample (every batch down to the
    smallest one) of the cells it is given; its size, n_batches x the smallest
    batch, is the reported n_cells.
    """
    rows = subsample_rows(len(X), max_cells, seed)
    batches = np.asarray(batches)[rows]
    counts = pd.Series(batches).value_counts()
    total = int(len(counts) * counts.min())
    return {
        "seurat_alignment": seurat_alignment_score(np.asarray(X)[rows], batches, k_frac=k_frac, n_subsamples=1, seed=seed),
        "seurat_alignment_n_cells": float(total),
        "seurat_alignment_k": float(_k(k_frac, total)),
    }
