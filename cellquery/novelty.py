"""One run's rejection analyses beyond MBA: novel types, distance ROC, hits across reference datasets.

:func:`analyse_run` takes what a run's files hold (predictions, model-0
embeddings, and for embedding methods the index's hits and calibration) and
returns the run's five tables; the metrics themselves are in
:mod:`cellquery.metrics.novelty` (Fig. 3a-c, Supp. Fig. 14g of the Cell
BLAST paper), :mod:`cellquery.metrics.distance_roc` (Supp. Fig. 8c) and
:mod:`cellquery.metrics.hit_datasets` (Supp. Fig. 9e).

**Hits of a run.** An embedding method's hits are its model-0 hits from the
run's index (``hits.npz``) with exact Euclidean distances recomputed from the
embeddings (as the acceptance rule does), and its local scales are those the
index stage stored (``calibration.npz``). A predictor (a peer tool) keeps its
hits to itself; where it saves an embedding, its hits here are the exact
``k`` nearest reference cells in that embedding (faiss ``Flat``), with local
scales computed the same way as the index stage's. A predictor without an
embedding (the controls) has no hits: its rejected cells are counted but
neither clustered nor placed, and it has no distance ROC or hit-dataset rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.index.calibration import Calibration
from cellquery.io import read_table
from cellquery.metrics.distance_roc import CURVE_COLUMNS, closeness_scores, distance_roc, same_type_pairs
from cellquery.metrics.hit_datasets import HIT_DATASET_COLUMNS, hit_datasets, hit_unit_key
from cellquery.metrics.novelty import NOVEL_TYPE_COLUMNS, REJECTED_CELL_COLUMNS, novel_types
from cellquery.settings import GroupSettings
from cellquery.summary import RUN_COLUMNS, SUMMARY_COLUMNS

# table name (the per-run file's stem, results/<name>.tsv when gathered) -> its columns
TABLES = {
    "novel_types": NOVEL_TYPE_COLUMNS,
    "rejected_cells": REJECTED_CELL_COLUMNS,
    "distance_roc": SUMMARY_COLUMNS,
    "distance_roc_curves": CURVE_COLUMNS,
    "hit_datasets": HIT_DATASET_COLUMNS,
}


@dataclass
class RunHits:
    """Every query cell's hits: reference rows (-1: none), exact Euclidean distances, the hits' local scales."""

    indices: np.ndarray
    distances: np.ndarray
    scales: np.ndarray


def run_hits(reference: np.ndarray, query: np.ndarray, *, k: int, indices: np.ndarray | None = None,
             calibration: Calibration | None = None) -> RunHits | None:
    """The run's hits (module docstring): the index's ``indices`` and ``calibration``, or exact search when None.

    None when the run has no embedding (0 columns).
    """
    from cellquery.index import build_index
    from cellquery.index.calibration import local_scales
    from cellquery.transfer.acceptance import exact_distances

    if reference.shape[1] == 0 or query.shape[1] == 0:
        return None
    if indices is None:
        index = build_index("faiss", reference, {"factory": "Flat"})
        indices = index.search(query, min(k, len(reference)))[1]
        scale = local_scales(index, reference, k=k)
    else:
        if calibration is None:
            raise InputError("novelty: an index's hits need its calibration (local scales)")
        scale = np.asarray(calibration.scale)
        if len(scale) != len(reference):
            raise InputError(f"novelty: calibration has {len(scale)} local scales, the reference {len(reference)} cells")
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) != len(query):
        raise InputError(f"novelty: {len(indices)} hit lists but {len(query)} query cells")
    present = indices >= 0
    scales = np.where(present, scale[np.where(present, indices, 0)], np.nan)
    return RunHits(indices, exact_distances(query, reference, indices), scales)


def analyse_run(
    predictions: pd.DataFrame,
    *,
    reference_obs: pd.DataFrame,
    query_embedding: np.ndarray,
    hits: RunHits | None,
    group: GroupSettings,
    run: dict,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """The run's tables by name (:data:`TABLES`): novel types, rejected cells, distance AUCs and curves, hit datasets.

    ``hits``: :func:`run_hits` (None: no embedding, so no distance ROC and no
    hit-dataset rows). Hit datasets are counted only where the group's
    reference has units to compare (:func:`cellquery.metrics.hit_datasets.hit_unit_key`).
    """
    run = {key: run[key] for key in RUN_COLUMNS}
    reference_labels = reference_obs[group.label_key].astype(str).to_numpy()
    embedding = query_embedding if query_embedding is not None and query_embedding.shape[1] else None
    types, cells = novel_types(predictions, reference_labels, embedding, run=run, seed=seed)
    tables = {"novel_types": types, "rejected_cells": cells}
    empty = {name: pd.DataFrame(columns=TABLES[name]) for name in ("distance_roc", "distance_roc_curves", "hit_datasets")}
    if hits is None:
        return {**tables, **empty}
    same, present = same_type_pairs(hits.indices, reference_labels, predictions["true_label"])
    scores = closeness_scores(hits.distances, hits.scales, predictions)
    tables["distance_roc"], tables["distance_roc_curves"] = distance_roc(same, present, scores, run=run)
    unit_key = hit_unit_key(reference_obs, group.batch_key)
    tables["hit_datasets"] = hit_datasets(hits.indices, reference_obs, unit_key, run=run) if unit_key else empty["hit_datasets"]
    return tables


def gather(paths: Iterable[str | os.PathLike], name: str) -> pd.DataFrame:
    """The per-run tables ``name`` (:data:`TABLES`) of many runs, concatenated in run order."""
    columns = TABLES[name]
    parts = [read_table(p, required=columns)[columns] for p in paths]
    parts = [p for p in parts if len(p)]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    if "cluster" in table:  # Leiden ids read back as numbers (and "" as NaN): ids again
        table["cluster"] = table["cluster"].map(_cluster_id).astype(object)
    return table.sort_values(RUN_COLUMNS, kind="mergesort").reset_index(drop=True)


def _cluster_id(value) -> str:
    """A cluster id as written ("all", "0", "1", ...; "" for a cell not clustered) from its value read back."""
    if pd.isna(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
