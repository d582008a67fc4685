"""Predictor methods: peer tools that embed, search and transfer by themselves.

One module per method. A module defines ``REQUIRES`` (e.g. ``("counts",)``)
and ``predict(reference, query, genes, *, label_key, batch_key,
continuous_keys, ontology_key, seed, **params) -> MethodResult``.
A module whose rejection has a P-value cut-off sets ``SWEEPS = True`` and
accepts ``sweep`` (cut-offs; one ``sweep_<cut-off>`` prediction column each).
Registering a method is one line in :data:`PREDICTORS`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
import pandas as pd

from cellquery.errors import InputError

# name -> module path; imported lazily, since peer tools are heavy to import.
PREDICTORS: dict[str, str] = {
    "cellblast": "cellquery.methods.cellblast",
    "cellmapper": "cellquery.methods.cellmapper",
    "ingest": "cellquery.methods.ingest",
    "scanvi": "cellquery.methods.scanvi",
}


@dataclass
class MethodResult:
    """What every predictor returns.

    ``predictions``: one row per query cell, in query order, with column
    ``prediction`` (a reference label, ``ambiguous`` or ``rejected``) and,
    where the group has them, ``pred_<continuous key>`` columns and
    ``pred_cl``. Embeddings (reference and query, same space) are optional.
    ``timings``: seconds per phase (e.g. ``train_s``, ``query_s``).
    ``extra``: per-cell columns worth keeping (confidence, presence score...).
    """

    predictions: pd.DataFrame
    reference_embedding: np.ndarray | None = None
    query_embedding: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)


def get_predictor(name: str) -> ModuleType:
    """The module implementing predictor ``name``."""
    if name not in PREDICTORS:
        raise InputError(f"config: methods: unknown predictor {name!r} (known: {', '.join(PREDICTORS) or 'none'})")
    return importlib.import_module(PREDICTORS[name])


def skip_reason(name: str, values: str) -> str | None:
    """Why predictor ``name`` cannot run on data whose values are ``values``, or None."""
    requires = get_predictor(name).REQUIRES
    if "counts" in requires and values != "counts":
        return f"needs raw counts but the group's values are {values}"
    return None


def run_predictor(reference, query, genes, *, predictor: str, params: dict, group: dict, seed: int, sweep=()):
    """Run predictor ``predictor`` on a group; return (predictions table, reference AnnData, query AnnData, timings).

    The predictions table has the same columns as the embedding path's
    (:func:`cellquery.transfer.prediction_table`); the AnnDatas carry the
    cells' obs and, where the method has one, its embedding in ``obsm["X_emb"]``.
    ``sweep`` (rejection cut-offs) reaches methods that set ``SWEEPS``; the others ignore it.
    """
    from cellquery.io import embedding_adata
    from cellquery.transfer import label_to_term, prediction_table

    module = get_predictor(predictor)
    reason = skip_reason(predictor, reference.uns.get("values", "counts"))
    if reason:
        raise InputError(f"predictor {predictor}: {reason}")
    batch_keys = group.get("batch_keys") or []
    result = module.predict(
        reference,
        query,
        list(genes),
        label_key=group["label_key"],
        batch_key=batch_keys[0] if batch_keys else None,
        continuous_keys=list(group.get("continuous_keys", [])),
        ontology_key=group.get("ontology_key"),
        seed=seed,
        **({"sweep": list(sweep)} if getattr(module, "SWEEPS", False) and len(sweep) else {}),
        **params,
    )
    ontology_key = group.get("ontology_key")
    to_term = label_to_term(reference.obs, group["label_key"], ontology_key) if ontology_key else None
    table = prediction_table(query.obs, group, result.predictions, to_term)
    uns = {"embedding": {"method": predictor, "seed": seed}}
    ref_emb = np.zeros((reference.n_obs, 0), np.float32) if result.reference_embedding is None else result.reference_embedding
    qry_emb = np.zeros((query.n_obs, 0), np.float32) if result.query_embedding is None else result.query_embedding
    timings = pd.DataFrame({"phase": list(result.timings), "seconds": list(result.timings.values())})
    return table, embedding_adata(reference.obs, ref_emb, uns), embedding_adata(query.obs, qry_emb, uns), timings
