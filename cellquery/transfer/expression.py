"""Expression transfer of held-out genes through the mapping matrix M, scored against the query's measurement.

CellMapper transfers expression like any other value, ``Y_query = M . Y_reference``
(quadbio/cellmapper ``map_layers``), and evaluates it by Pearson, Spearman,
Jensen-Shannon and RMSE comparisons of transferred and measured expression
(``evaluate_expression_transfer``). Imputation benchmarks hold genes out of the
query, embed without them and predict them; here the *held-out genes* are genes
that no embedding or peer sees at all: a seeded draw of ``n_genes`` from the
``pool`` x ``n_genes`` most variable genes of the reference (log-normalised
variance) outside the group's HVG list, the genes every method embeds. The
query's measured log-normalised expression of them is the truth.

Scores (:func:`expression_scores`), over the query cells that received a
transfer (a row of M with weight):

* per gene, across cells: Pearson and Spearman correlation (scipy.stats), RMSE;
* per cell, across the held-out genes: Pearson, Spearman, RMSE, and the
  Jensen-Shannon divergence (scipy.spatial.distance.jensenshannon, squared,
  natural log) of the profiles normalised to sum 1.

A gene (cell) whose measured or transferred values are constant has no
correlation (NaN, left out of the means); a cell whose measured or transferred
profile sums to 0 has no JSD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cellquery.errors import InputError
from cellquery.transfer.presence import row_normalised

N_GENES = 50
POOL = 4
SEED = 0


@dataclass(frozen=True)
class ExpressionSettings:
    """Config ``expression_transfer``: how many genes to hold out, from how large a pool, with which seed."""

    n_genes: int = N_GENES
    pool: int = POOL
    seed: int = SEED

    @classmethod
    def from_config(cls, spec) -> "ExpressionSettings":
        return cls(**(spec or {}))


def _dense(X) -> np.ndarray:
    return np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)


def held_out_genes(reference_X, genes, embedding_genes, *, n_genes: int = N_GENES, pool: int = POOL, seed: int = SEED) -> list[str]:
    """The held-out genes (module docstring), sorted; fewer (or none) when fewer genes lie outside ``embedding_genes``."""
    genes = np.asarray(genes, dtype=str)
    outside = ~np.isin(genes, np.asarray(list(embedding_genes), dtype=str))
    if not outside.any() or n_genes < 1:
        return []
    X = reference_X[:, np.flatnonzero(outside)]
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64)
        mean = np.asarray(X.mean(axis=0)).ravel()
        variance = np.asarray(X.multiply(X).mean(axis=0)).ravel() - mean**2
    else:
        variance = np.asarray(X, dtype=np.float64).var(axis=0)
    candidates = genes[outside]
    order = np.lexsort((candidates, -variance))  # most variable first, ties by name
    top = candidates[order[: pool * n_genes]]
    top = top[variance[order[: pool * n_genes]] > 0]
    chosen = np.random.default_rng(seed).choice(top, size=min(n_genes, len(top)), replace=False)
    return sorted(chosen.tolist())


def transfer_expression(M: sp.spmatrix, reference_values) -> np.ndarray:
    """``M . Y_reference`` with M's rows normalised; NaN rows for query cells without weight."""
    M = sp.csr_matrix(M, dtype=np.float64)
    out = np.asarray(row_normalised(M) @ _dense(reference_values))
    out[np.asarray(M.sum(axis=1)).ravel() <= 0] = np.nan
    return out


def _correlations(a: np.ndarray, b: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson and Spearman correlation of matching columns (axis 0) or rows (axis 1); NaN where one side is constant.

    All columns at once (scipy's ``pearsonr(..., axis=0)``; Spearman's is Pearson's of the
    average ranks, ``rankdata(..., axis=0)``, as ``spearmanr`` computes it), not one scipy
    call per gene and per cell.
    """
    from scipy.stats import pearsonr, rankdata

    if axis == 1:
        a, b = a.T, b.T
    pearson, spearman = np.full(a.shape[1], np.nan), np.full(a.shape[1], np.nan)
    if a.shape[0] < 2:
        return pearson, spearman
    ok = (np.ptp(a, axis=0) > 0) & (np.ptp(b, axis=0) > 0)
    if ok.any():
        x, y = a[:, ok], b[:, ok]
        pearson[ok] = pearsonr(x, y, axis=0).statistic
        spearman[ok] = pearsonr(rankdata(x, axis=0), rankdata(y, axis=0), axis=0).statistic
    return pearson, spearman


def _jsd_rows(measured: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import jensenshannon

    p, q = np.clip(measured, 0, None), np.clip(predicted, 0, None)
    out = np.full(len(p), np.nan)
    for i in range(len(p)):
        if p[i].sum() > 0 and q[i].sum() > 0:
            out[i] = jensenshannon(p[i], q[i]) ** 2  # scipy returns the distance, the divergence's square root
    return out


def expression_scores(measured, predicted, genes) -> tuple[dict[str, float], pd.DataFrame]:
    """Summary scores and the per-gene table (``gene``, ``pearson``, ``spearman``, ``rmse``) of a transfer.

    ``measured`` and ``predicted`` are (query cells x held-out genes); rows of
    ``predicted`` with NaN (no transfer) are left out. Summary:
    ``expr_pearson``, ``expr_spearman`` (mean per-gene correlation),
    ``expr_rmse`` (over every cell and gene), ``expr_jsd`` (mean per-cell JSD),
    ``expr_pearson_cell``, ``expr_spearman_cell`` (mean per-cell correlation)
    and ``expr_cells`` (the cells scored). All NaN without genes or cells.
    """
    measured, predicted = _dense(measured), _dense(predicted)
    made = ~np.isnan(predicted).any(axis=1) if predicted.shape[1] else np.zeros(len(predicted), bool)
    measured, predicted = measured[made], predicted[made]
    names = ["expr_pearson", "expr_spearman", "expr_rmse", "expr_jsd", "expr_pearson_cell", "expr_spearman_cell"]
    per_gene = pd.DataFrame({"gene": list(genes), "pearson": np.nan, "spearman": np.nan, "rmse": np.nan})
    if measured.size == 0:
        return {**dict.fromkeys(names, float("nan")), "expr_cells": float(len(measured))}, per_gene
    gene_pearson, gene_spearman = _correlations(measured, predicted, axis=0)
    cell_pearson, cell_spearman = _correlations(measured, predicted, axis=1)
    per_gene["pearson"], per_gene["spearman"] = gene_pearson, gene_spearman
    per_gene["rmse"] = np.sqrt(np.mean((measured - predicted) ** 2, axis=0))

    def mean(values):
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    scores = {
        "expr_pearson": mean(gene_pearson),
        "expr_spearman": mean(gene_spearman),
        "expr_rmse": float(np.sqrt(np.mean((measured - predicted) ** 2))),
        "expr_jsd": mean(_jsd_rows(measured, predicted)),
        "expr_pearson_cell": mean(cell_pearson),
        "expr_spearman_cell": mean(cell_spearman),
        "expr_cells": float(len(measured)),
    }
    return scores, per_gene


def save_mapping(path, M: sp.spmatrix) -> None:
    """Write M (CSR) as npz."""
    from cellquery.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            sp.save_npz(handle, sp.csr_matrix(M))


def load_mapping(path) -> sp.csr_matrix | None:
    """M from a transfer's ``mapping.npz``, or from a predictor's query embedding file (``obsm["mapping"]``; None without)."""
    if str(path).endswith(".h5ad"):
        from cellquery.io import read_h5ad

        query = read_h5ad(path)
        return sp.csr_matrix(query.obsm["mapping"]) if "mapping" in query.obsm else None
    return sp.load_npz(path).tocsr()


def expression_pairs(M, reference, query, embedding_genes, *, reference_cells, query_cells, settings: ExpressionSettings):
    """Held-out genes, their measured (query) and transferred (``M . reference``) expression, cells in M's order.

    ``reference`` and ``query`` are the group's preprocessed AnnDatas
    (log-normalised ``X``); ``reference_cells`` and ``query_cells`` name M's
    columns and rows.
    """
    genes = held_out_genes(reference.X, reference.var_names, embedding_genes, n_genes=settings.n_genes, pool=settings.pool,
                           seed=settings.seed)
    rows = {}
    for role, data, cells in (("reference", reference, reference_cells), ("query", query, query_cells)):
        rows[role] = pd.Index(data.obs_names).get_indexer(list(cells))
        if (rows[role] < 0).any():
            raise InputError(f"expression transfer: {int((rows[role] < 0).sum())} {role} cells of the run are not in its preprocessed {role}")
    reference_values, query_values = reference[rows["reference"]], query[rows["query"]]
    measured = _dense(query_values[:, genes].X) if genes else np.empty((len(query_cells), 0))
    predicted = transfer_expression(M, reference_values[:, genes].X) if genes else np.empty((len(query_cells), 0))
    return genes, measured, predicted


def score_expression_transfer(M, reference, query, embedding_genes, *, reference_cells, query_cells,
                              settings: ExpressionSettings = ExpressionSettings()):
    """:func:`expression_scores` of the held-out genes transferred through M (``expr_genes``: how many were held out)."""
    genes, measured, predicted = expression_pairs(M, reference, query, embedding_genes, reference_cells=reference_cells,
                                                  query_cells=query_cells, settings=settings)
    scores, per_gene = expression_scores(measured, predicted, genes)
    return {**scores, "expr_genes": float(len(genes))}, per_gene


def scatter_values(genes, measured, predicted, reference, n_genes: int = 4) -> pd.DataFrame:
    """Long table (``gene``, ``measured``, ``transferred``) of the ``n_genes`` held-out genes most variable in the reference.

    The genes are picked from the reference alone (its variance), never from how well they transfer.
    """
    if not len(genes):
        return pd.DataFrame(columns=["gene", "measured", "transferred"])
    X = reference[:, list(genes)].X
    variance = _dense(X).var(axis=0)
    order = np.lexsort((np.asarray(genes, dtype=str), -variance))[:n_genes]
    parts = [
        pd.DataFrame({"gene": genes[j], "measured": measured[:, j], "transferred": predicted[:, j]}) for j in order
    ]
    return pd.concat(parts, ignore_index=True)
