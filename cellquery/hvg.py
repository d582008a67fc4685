"""Highly variable genes chosen on the reference only.

As in the Cell BLAST paper (Cao et al. 2020), Methods, genes are selected within
every batch and a gene is kept when it is selected in at least
``min_batch_fraction`` of the batches. Each batch is passed to scanpy's
``highly_variable_genes`` on its own (flavor ``seurat``, the top
``n_top_genes`` by normalised dispersion). scanpy's own
``batch_key`` mode is not used: it drops genes unexpressed in a batch before
binning, so its per-batch choice differs from running the batch alone.
Atlas-sized references use the chunked equivalent, :func:`cellquery.backed.select_hvg_backed`.
"""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc

from cellquery.errors import InputError


def select_hvg(
    reference: ad.AnnData,
    *,
    batch_key: str | None,
    n_top_genes: int = 1000,
    min_batch_fraction: float = 0.5,
) -> pd.DataFrame:
    """Return a table of the chosen genes (``gene``, ``n_batches``, ``dispersion``).

    ``reference.X`` holds log-normalised values. ``dispersion`` is the mean
    normalised dispersion over batches; genes are ordered by the number of
    batches selecting them, then by that dispersion.
    """
    check_fraction(min_batch_fraction)
    if batch_key is not None and batch_key not in reference.obs:
        raise InputError(f"reference: obs column {batch_key!r} (batch key) is missing")
    batches = reference.obs[batch_key].astype(str).to_numpy() if batch_key else np.zeros(reference.n_obs, dtype=str)
    tables = []
    for batch in sorted(set(batches)):
        part = ad.AnnData(X=reference.X[batches == batch], var=pd.DataFrame(index=reference.var_names))
        tables.append(sc.pp.highly_variable_genes(part, flavor="seurat", n_top_genes=min(n_top_genes, part.n_vars), inplace=False))
    return hvg_table(reference.var_names, tables, min_batch_fraction)


def check_fraction(min_batch_fraction: float) -> None:
    """``hvg.min_batch_fraction`` must be in (0, 1]."""
    if not 0 < min_batch_fraction <= 1:
        raise InputError(f"hvg.min_batch_fraction must be in (0, 1], got {min_batch_fraction}")


def hvg_table(var_names: pd.Index, tables: list[pd.DataFrame], min_batch_fraction: float) -> pd.DataFrame:
    """The chosen genes from per-batch scanpy tables (``highly_variable``, ``dispersions_norm``), as :func:`select_hvg`."""
    n_selected = np.zeros(len(var_names), dtype=int)
    dispersion = np.zeros(len(var_names))
    for stats in tables:
        n_selected += stats["highly_variable"].to_numpy(dtype=int)
        dispersion += np.nan_to_num(stats["dispersions_norm"].to_numpy(dtype=float)) / len(tables)
    needed = math.ceil(min_batch_fraction * len(tables) - 1e-9)
    keep = n_selected >= needed
    table = pd.DataFrame(
        {"gene": var_names[keep].astype(str), "n_batches": n_selected[keep], "dispersion": dispersion[keep]}
    ).sort_values(["n_batches", "dispersion", "gene"], ascending=[False, False, True], kind="mergesort")
    if len(table) == 0:
        raise InputError("reference: no highly variable gene is selected in enough batches")
    return table.reset_index(drop=True)
