"""Seurat v4 label transfer: ``FindTransferAnchors`` + ``TransferData`` (R, through ``Rscript``).

Seurat's reference mapping (Stuart et al., Cell 2019): the reference is
scaled and reduced by PCA on the chosen features, the query is projected onto
the reference PCs ("pcaproject"), *anchors* are mutual nearest neighbours
between reference and query cells in that space, filtered and scored, and
``TransferData`` gives each query cell a weighted vote of the anchors near
it: a score per reference label (``prediction.score.<label>``), the winning
label (``predicted.id``) and its score (``prediction.score.max``). Continuous
annotations go through the same anchor weights (``refdata`` a matrix), so
the fates ``pred_<key>`` are Seurat's own transfer.

Run as ``cellquery/predictors/r/seurat_transfer.R`` by ``Rscript`` (no shell;
files: :mod:`cellquery.predictors.rscript`), with the log-normalised values
of the project's HVGs (``X``; Seurat's ``NormalizeData`` is the same
``log1p`` of counts per 10,000 the preprocess stage applies) as the assays'
``data`` slot and the HVGs as ``features`` (Seurat's default would be the
reference's ``VariableFeatures``).

Defaults (Seurat 4.3.0 as Debian's r-cran-seurat ships it; arguments of
``FindTransferAnchors`` and ``TransferData`` in R/integration.R):
``normalization.method`` "LogNormalize", ``reduction`` "pcaproject" with the
reference PCA computed on the features (``reference.reduction`` NULL,
``scale`` TRUE, ``approx.pca`` TRUE), ``npcs`` 30, ``dims`` 1:30,
``l2.norm`` TRUE, ``k.anchor`` 5, ``k.filter`` 200, ``k.score`` 30,
``max.features`` 200, ``nn.method`` "annoy" with ``n.trees`` 50;
``TransferData``: ``weight.reduction`` "pcaproject", ``k.weight`` 50,
``sd.weight`` 1. Where a group is too small for them, Seurat itself stops
(e.g. fewer anchors than ``k.weight``); the params can lower them.

Rejection: Seurat has none of its own; a query cell whose
``prediction.score.max`` is below ``min_score`` (0.5) is ``rejected``. 0.5 is
the threshold Seurat users commonly apply to the prediction score (cells
with a lower score are called low-confidence or unassigned), not a Seurat
setting. ``score`` is ``prediction.score.max``; the same cut-off is applied at
every threshold of :data:`cellquery.predictors.SCORE_THRESHOLDS` (``sweep_<t>``)
for the rejection sweep. Fates of rejected cells are NaN.

Embedding: the "pcaproject" space of the anchors (reference PCs, the query
projected onto them), reference and query.

Runtime: R with the Seurat package (Debian ``r-cran-seurat``); where either
is missing the method is skipped with that reason (:func:`runtime_missing`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.predictors import MethodResult, fate_columns, rscript, score_sweep, timed

REQUIRES: tuple[str, ...] = ()
R_PACKAGES = ("Matrix", "Seurat")
DEBIAN_PACKAGES = "r-cran-seurat"
SCRIPT = "seurat_transfer.R"


def runtime_missing() -> str | None:
    """Why Seurat cannot run here (no ``Rscript`` or no Seurat package), or None."""
    return rscript.missing_r_packages(R_PACKAGES, DEBIAN_PACKAGES)


def check_params(n_ref: int, n_query: int, *, npcs: int, dims: int, k_anchor: int, k_filter: int | None, k_score: int,
                 k_weight: int, min_score: float) -> None:
    """Raise :class:`InputError` naming the parameter out of range."""
    if not 0 <= min_score <= 1:
        raise InputError(f"config: methods: seurat min_score must be in [0, 1], got {min_score}")
    if not 1 <= dims <= npcs:
        raise InputError(f"config: methods: seurat needs 1 <= dims <= npcs, got dims={dims}, npcs={npcs}")
    for name, k in (("k_anchor", k_anchor), ("k_score", k_score), ("k_weight", k_weight)):
        if k < 1:
            raise InputError(f"config: methods: seurat {name} must be >= 1, got {k}")
    if k_filter is not None and k_filter < 1:
        raise InputError(f"config: methods: seurat k_filter must be >= 1 or null (no filtering), got {k_filter}")
    if npcs >= min(n_ref, n_query):
        raise InputError(f"config: methods: seurat npcs ({npcs}) must be below the cells of reference ({n_ref}) and query ({n_query})")


def run_seurat(
    workdir: Path, reference: ad.AnnData, query: ad.AnnData, genes: Sequence[str], labels: np.ndarray,
    fates: pd.DataFrame | None, *, seed: int, npcs: int, dims: int, k_anchor: int, k_filter: int | None, k_score: int,
    k_weight: int,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Write the exchange files, run the R script; its predictions table and the reference / query embeddings."""
    genes = list(genes)
    rscript.write_inputs(workdir, reference[:, genes].X, query[:, genes].X, labels, fates)
    args = [seed, npcs, dims, k_anchor, "NA" if k_filter is None else k_filter, k_score, k_weight]
    rscript.run_script(SCRIPT, workdir, args)
    table = pd.read_csv(workdir / "predictions.csv", dtype={"predicted.id": str}, keep_default_na=False, na_values=[])
    ref_emb = pd.read_csv(workdir / "reference_embedding.csv").to_numpy(np.float32)
    qry_emb = pd.read_csv(workdir / "query_embedding.csv").to_numpy(np.float32)
    return table, ref_emb, qry_emb


def predict(
    reference: ad.AnnData,
    query: ad.AnnData,
    genes: Sequence[str],
    *,
    label_key: str,
    batch_key: str | None = None,
    continuous_keys: Sequence[str] = (),
    ontology_key: str | None = None,
    seed: int = 0,
    npcs: int = 30,
    dims: int = 30,
    k_anchor: int = 5,
    k_filter: int | None = 200,
    k_score: int = 30,
    k_weight: int = 50,
    min_score: float = 0.5,  # the threshold Seurat users commonly apply (module docstring), not a Seurat setting
) -> MethodResult:
    """Transfer reference labels (and fates) to the query with Seurat v4.

    Parameters
    ----------
    reference, query
        Preprocessed AnnDatas (log-normalised ``X``).
    genes
        HVGs: Seurat's ``features``.
    label_key, continuous_keys
        Reference obs columns to transfer (``refdata``).
    batch_key, ontology_key
        Unused (``FindTransferAnchors`` takes one reference as it is; CL ids follow the labels).
    seed
        R's ``set.seed`` before the run.
    npcs, dims
        Reference PCs computed and used (``dims = 1:dims``; Seurat's defaults 30 and 1:30).
    k_anchor, k_filter, k_score, k_weight
        Seurat's neighbour counts (defaults 5, 200, 30, 50); ``k_filter`` None skips anchor filtering (R's NA).
    min_score
        Cells whose ``prediction.score.max`` is below it are ``rejected`` (0.5).
    """
    check_params(reference.n_obs, query.n_obs, npcs=npcs, dims=dims, k_anchor=k_anchor, k_filter=k_filter,
                 k_score=k_score, k_weight=k_weight, min_score=min_score)
    from cellquery.transfer import REJECTED

    keys = list(continuous_keys)
    labels = reference.obs[label_key].astype(str).to_numpy()
    fates = reference.obs[keys].astype(float) if keys else None
    timings: dict[str, float] = {}
    with rscript.workdir() as tmp, timed(timings, "transfer_s"):
        table, ref_emb, qry_emb = run_seurat(
            Path(tmp), reference, query, genes, labels, fates, seed=seed, npcs=npcs, dims=dims, k_anchor=k_anchor,
            k_filter=k_filter, k_score=k_score, k_weight=k_weight,
        )
    if len(table) != query.n_obs:
        raise RuntimeError(f"{SCRIPT}: {len(table)} predictions for {query.n_obs} query cells")
    score = table["prediction.score.max"].to_numpy(float)
    rejected = score < min_score
    prediction = np.where(rejected, REJECTED, table["predicted.id"].to_numpy(dtype=object))
    top_label = table["predicted.id"].to_numpy(dtype=object)
    predictions = pd.DataFrame({"prediction": prediction, "score": score, "top_label": top_label})
    predictions = pd.concat([predictions, pd.DataFrame(score_sweep(top_label, score))], axis=1)  # every cut-off of the grid
    if keys:
        values = table[[f"f{j + 1}" for j in range(len(keys))]].to_numpy(float)
        values[rejected] = np.nan
        for column, column_values in fate_columns(keys, values).items():
            predictions[column] = column_values
    return MethodResult(predictions=predictions, reference_embedding=ref_emb, query_embedding=qry_emb, timings=timings)
