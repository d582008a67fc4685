"""Predictors: peer tools that embed, search and transfer by themselves.

One module per predictor. A module defines ``REQUIRES`` (e.g. ``("counts",)``)
and ``predict(reference, query, genes, *, label_key, batch_key,
continuous_keys, ontology_key, seed, **params) -> MethodResult``.
A module whose rejection has a P-value cut-off sets ``SWEEPS = True`` and
accepts ``sweep`` (cut-offs; one ``sweep_<cut-off>`` prediction column each);
a module whose rejection is a cut-off on its own score (a confidence or a
class probability) sweeps that cut-off over :data:`SCORE_THRESHOLDS`
(:func:`score_sweep`).

Every predictor writes a per-cell ``score``: its confidence that the cell
belongs to a type of the reference (higher: more confident), from which
:mod:`cellquery.metrics.rejection` scores rejection at every threshold.
Registering a predictor is one line in :data:`PREDICTORS` (an attribute of a
module, ``"package.module:attr"``, serves as well: the controls of
:mod:`cellquery.predictors.controls` are registered so).

:func:`run_predictor` checks the inputs every predictor relies on (raw counts
where it needs them, the group's obs columns in the reference, the genes in
both reference and query) before calling ``predict``, so a module checks only
its own parameters.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.registry import Registry, skip_reason
from cellquery.settings import GroupSettings

if TYPE_CHECKING:
    import anndata as ad

# imported on first use: peer tools (torch, scvi-tools, Cell BLAST) are heavy to import
PREDICTORS = Registry(
    "predictor",
    "methods.<name>.predictor",
    {
        "cellblast": "cellquery.predictors.cellblast",
        "cellmapper": "cellquery.predictors.cellmapper",
        "ingest": "cellquery.predictors.ingest",
        "scanvi": "cellquery.predictors.scanvi",
        # the reference-mapping tools users pick; a missing runtime (R, an R package) is a skip reason
        "celltypist": "cellquery.predictors.celltypist",
        "seurat": "cellquery.predictors.seurat",
        "singler": "cellquery.predictors.singler",
        "symphony": "cellquery.predictors.symphony",
        # spatial groups only (REQUIRES "spatial"): a GNN on the radius graph, not pretrained or pretrained
        "gnn": "cellquery.predictors.gnn",
        "gnn_pretrained": "cellquery.predictors.gnn:pretrained",
        # controls (Open Problems' label projection task): bounds, not methods
        "random_labels": "cellquery.predictors.controls:random_labels",
        "majority_label": "cellquery.predictors.controls:majority_label",
        "true_labels": "cellquery.predictors.controls:true_labels",
        "reject_all": "cellquery.predictors.controls:reject_all",
    },
)


# Cut-offs swept for predictors that reject below a cut-off on their own score (CellMapper's
# min_confidence, scANVI's min_probability): a grid over the score's range [0, 1], denser near 1.
SCORE_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def score_sweep(labels, score, thresholds: Sequence[float] = SCORE_THRESHOLDS) -> dict[str, np.ndarray]:
    """``sweep_<t>`` prediction columns of a rule that rejects cells whose ``score`` is below t.

    ``labels`` are the cells' labels before rejection; at each cut-off t a
    cell keeps its label when its score is at least t, else it is ``rejected``.
    """
    from cellquery.transfer import REJECTED, sweep_column

    labels = np.asarray(labels, dtype=object)
    score = np.asarray(score, dtype=float)
    return {sweep_column(t): np.where(score >= t, labels, REJECTED) for t in thresholds}


@dataclass
class MethodResult:
    """What every predictor returns.

    ``predictions``: one row per query cell, in query order, with column
    ``prediction`` (a reference label, ``ambiguous`` or ``rejected``) and,
    where the group has them, ``pred_<continuous key>`` columns and
    ``pred_cl``, and ``score`` (the cell's confidence that it belongs to a
    reference type); further per-cell columns (confidence, presence score...) are
    kept in the predictions file. Embeddings (reference and query, same space)
    are optional. ``timings``: seconds per phase (e.g. ``train_s``, ``query_s``).
    ``mapping``: the tool's mapping matrix M (query x reference cells, rows
    normalised; CellMapper), optional; kept in the query embedding file's
    ``obsm["mapping"]`` so that expression can be transferred through it.
    ``curves``: training loss per epoch by phase (e.g. the spatial GNN's
    ``pretrain`` and ``finetune``), optional; kept in the query embedding
    file's ``uns["loss_curves"]``.
    """

    predictions: pd.DataFrame
    reference_embedding: np.ndarray | None = None
    query_embedding: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    mapping: object | None = None
    curves: dict[str, list[float]] = field(default_factory=dict)


@contextlib.contextmanager
def timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    """Record the seconds the block takes as ``timings[phase]``."""
    start = time.perf_counter()
    yield
    timings[phase] = time.perf_counter() - start


def fate_columns(keys: Sequence[str], fates: np.ndarray) -> dict[str, np.ndarray]:
    """The ``pred_<key>`` columns of predicted continuous annotations ``fates`` (cells x keys)."""
    return {f"pred_{key}": fates[:, j] for j, key in enumerate(keys)}


def vote_share(reference_labels: np.ndarray, neighbours: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per query cell the fraction of its reference ``neighbours`` (cells x k rows) whose label is its ``labels``."""
    return (np.asarray(reference_labels)[neighbours] == np.asarray(labels)[:, None]).mean(axis=1)


def neighbour_mapping(neighbours: np.ndarray, n_reference: int):
    """The mapping matrix M of a plain k-NN vote: each query cell's k reference ``neighbours`` with weight 1 / k.

    A tool that labels each cell by the mode of its k neighbours (ingest,
    Symphony) weighs them alike; M . Y_reference is then their mean, the
    same mean its fates are (:func:`neighbour_fates`).
    """
    from cellquery.transfer.kernel import mapping_matrix

    neighbours = np.asarray(neighbours)
    return mapping_matrix(neighbours, np.full(neighbours.shape, 1.0 / neighbours.shape[1]), n_reference)


def neighbour_fates(
    reference_obs: pd.DataFrame, keys: Sequence[str], neighbours: np.ndarray, rejected: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """``pred_<key>`` columns: each key's mean over a query cell's reference ``neighbours`` (NaN where ``rejected``)."""
    fates = reference_obs[list(keys)].to_numpy(float)[neighbours].mean(axis=1)
    if rejected is not None:
        fates[rejected] = np.nan
    return fate_columns(keys, fates)


def check_inputs(reference: ad.AnnData, query: ad.AnnData, genes: Sequence[str], group: GroupSettings) -> None:
    """Raise :class:`InputError` unless the reference has the group's obs columns and both sides have ``genes``."""
    roles = [(group.label_key, "label key"), *((k, "continuous key") for k in group.continuous_keys)]
    roles += [(group.batch_key, "batch key"), (group.ontology_key, "ontology key")]
    for key, role in roles:
        if key is not None and key not in reference.obs:
            raise InputError(f"reference: obs column {key!r} ({role}) is missing")
    missing = [g for g in genes if g not in reference.var_names or g not in query.var_names]
    if missing:
        raise InputError(f"hvg: gene {missing[0]!r} is not in both reference and query ({len(missing)} missing)")


def run_predictor(
    reference, query, genes, *, predictor: str, params: dict, group: GroupSettings, seed: int, sweep=()
):
    """Run predictor ``predictor`` on a group; return (predictions table, reference AnnData, query AnnData, timings).

    The predictions table has the same columns as the embedding path's
    (:func:`cellquery.transfer.prediction_table`); the AnnDatas carry the
    cells' obs and, where the predictor has one, its embedding in ``obsm["X_emb"]``.
    ``sweep`` (rejection cut-offs) reaches predictors that set ``SWEEPS``; the others ignore it.
    """
    module = PREDICTORS[predictor]
    reason = skip_reason(module, reference.uns.get("values", "counts"))
    if reason:
        raise InputError(f"predictor {predictor}: {reason}")
    check_inputs(reference, query, genes, group)
    result = module.predict(
        reference,
        query,
        list(genes),
        label_key=group.label_key,
        batch_key=group.batch_key,
        continuous_keys=list(group.continuous_keys),
        ontology_key=group.ontology_key,
        seed=seed,
        **({"sweep": list(sweep)} if getattr(module, "SWEEPS", False) and len(sweep) else {}),
        **params,
    )
    return _outputs(reference, query, group, result, {"embedding": {"method": predictor, "seed": seed}})


def _outputs(reference, query, group: GroupSettings, result: MethodResult, uns: dict):
    """The predictions table, the two embedding AnnDatas and the timings table of a predictor's result."""
    from cellquery.io import embedding_adata
    from cellquery.transfer import label_to_term, prediction_table

    ontology_key = group.ontology_key
    to_term = label_to_term(reference.obs, group.label_key, ontology_key) if ontology_key else None
    table = prediction_table(query.obs, group, result.predictions, to_term)
    ref_emb = np.zeros((reference.n_obs, 0), np.float32) if result.reference_embedding is None else result.reference_embedding
    qry_emb = np.zeros((query.n_obs, 0), np.float32) if result.query_embedding is None else result.query_embedding
    timings = pd.DataFrame({"phase": list(result.timings), "seconds": list(result.timings.values())})
    query_adata = embedding_adata(query.obs, qry_emb, dict(uns))  # its own uns: loss_curves below are the query file's
    if result.mapping is not None:
        import scipy.sparse as sp

        query_adata.obsm["mapping"] = sp.csr_matrix(result.mapping, dtype=np.float64)
    if result.curves:
        query_adata.uns["loss_curves"] = {phase: np.asarray(losses, dtype=np.float64) for phase, losses in result.curves.items()}
    return table, embedding_adata(reference.obs, ref_emb, uns), query_adata, timings
