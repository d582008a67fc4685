"""Annotation transfer from a query cell's reference hits.

A voter turns hits into per-label votes (one module per voter, registered in
:data:`VOTERS`); the shared rule in :mod:`cellquery.transfer.rules` turns votes
into a label, ``ambiguous`` or ``rejected``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.transfer import balanced, distance_weighted, kernel, majority
from cellquery.transfer.rules import AMBIGUOUS, REJECTED, decide, distance_cutoff, significant_hits

# name -> weights(codes, mask, distances, label_frequency, **params) -> (n, k) vote weights
VOTERS = {
    "majority": majority.weights,
    "distance_weighted": distance_weighted.weights,
    "kernel": kernel.weights,
    "balanced": balanced.weights,
}
CHUNK = 100_000

__all__ = ["VOTERS", "transfer_labels", "transfer_continuous", "REJECTED", "AMBIGUOUS", "distance_cutoff"]


def _check(voter: str, distances: np.ndarray, indices: np.ndarray, mask: np.ndarray | None) -> None:
    if voter not in VOTERS:
        raise InputError(f"config: transfers: unknown voter {voter!r} (known: {', '.join(VOTERS)})")
    if distances.shape != indices.shape or (mask is not None and mask.shape != indices.shape):
        raise InputError(f"hits: distances {distances.shape} and indices {indices.shape} differ in shape")


def _chunks(distances, indices, mask, max_distance):
    """Row chunks of (distances, indices, significant-hit mask)."""
    for start in range(0, len(indices), CHUNK):
        d, i = distances[start : start + CHUNK], indices[start : start + CHUNK]
        m = significant_hits(d, i, max_distance)
        if mask is not None:
            m &= mask[start : start + CHUNK]
        yield start, d, i, m


def transfer_labels(
    reference_labels,
    distances: np.ndarray,
    indices: np.ndarray,
    *,
    voter: str = "majority",
    min_hits: int = 2,
    min_fraction: float = 0.5,
    max_distance: float = np.inf,
    mask: np.ndarray | None = None,
    voter_params: dict | None = None,
) -> pd.DataFrame:
    """Predict a label per query cell from its hits.

    A hit counts when it exists, lies within ``max_distance`` and, if
    ``mask`` is given (e.g. significant P-values), is set there. Returns a
    table with ``prediction``, ``n_hits`` (counted hits) and ``top_fraction``
    (the winning label's share of the weighted votes).
    """
    _check(voter, distances, indices, mask)
    labels, codes_ref = np.unique(np.asarray(reference_labels, dtype=str), return_inverse=True)
    frequency = np.bincount(codes_ref, minlength=len(labels)) / max(len(codes_ref), 1)
    pred, n_hits, top = [], [], []
    for _, d, i, m in _chunks(distances, indices, mask, max_distance):
        codes = codes_ref[np.where(i >= 0, i, 0)]
        w = VOTERS[voter](codes, m, d, frequency, **(voter_params or {}))
        votes = np.zeros((len(codes), len(labels)))
        np.add.at(votes, (np.broadcast_to(np.arange(len(codes))[:, None], codes.shape)[m], codes[m]), w[m])
        hits = m.sum(axis=1)
        p, share = decide(votes, hits, labels, min_hits=min_hits, min_fraction=min_fraction)
        pred.append(p)
        top.append(share)
        n_hits.append(hits)
    return pd.DataFrame(
        {"prediction": np.concatenate(pred), "n_hits": np.concatenate(n_hits), "top_fraction": np.concatenate(top)}
    )


def transfer_continuous(
    reference_values: np.ndarray,
    distances: np.ndarray,
    indices: np.ndarray,
    *,
    min_hits: int = 2,
    max_distance: float = np.inf,
    mask: np.ndarray | None = None,
    voter: str = "majority",
    reference_labels=None,
    voter_params: dict | None = None,
) -> np.ndarray:
    """Weighted mean of the counted hits' values, Y_query = M . Y_reference; NaN rows for rejected cells.

    With the majority voter this is the arithmetic mean over significant hits
    (Cell BLAST Methods); other voters use their own weights as the rows of M.
    Embeddings transfer the same way (pass them as ``reference_values``).
    """
    _check(voter, distances, indices, mask)
    reference_values = np.asarray(reference_values, dtype=np.float64)
    if reference_labels is None:
        codes_ref, frequency = np.zeros(len(reference_values), dtype=int), np.ones(1)
    else:
        labels, codes_ref = np.unique(np.asarray(reference_labels, dtype=str), return_inverse=True)
        frequency = np.bincount(codes_ref, minlength=len(labels)) / len(codes_ref)
    out = np.full((len(indices), reference_values.shape[1]), np.nan)
    for start, d, i, m in _chunks(distances, indices, mask, max_distance):
        w = VOTERS[voter](codes_ref[np.where(i >= 0, i, 0)], m, d, frequency, **(voter_params or {}))
        M = kernel.mapping_matrix(i, w, len(reference_values))
        total = np.asarray(M.sum(axis=1)).ravel()
        block = (M @ reference_values) / np.where(total > 0, total, 1.0)[:, None]
        block[m.sum(axis=1) < min_hits] = np.nan
        out[start : start + len(block)] = block
    return out


def label_to_term(reference_obs: pd.DataFrame, label_key: str, ontology_key: str) -> dict[str, str]:
    """Each reference label's Cell Ontology id (its most frequent one)."""
    pairs = reference_obs[[label_key, ontology_key]].astype(str).value_counts()
    mapping: dict[str, str] = {}
    for (label, term), _ in pairs.items():
        mapping.setdefault(label, term)
    return mapping


def prediction_table(query_obs: pd.DataFrame, group: dict, predicted: pd.DataFrame, to_term: dict | None = None) -> pd.DataFrame:
    """The per-cell predictions file: truth beside prediction.

    ``predicted`` holds ``prediction`` and any ``pred_<continuous key>`` and
    extra columns, one row per query cell in query order. Where the group has
    an ontology key, ``true_cl`` and ``pred_cl`` are added (``pred_cl`` from
    ``to_term``, the reference's label-to-term map, unless ``predicted``
    already has it); continuous keys add ``true_<key>`` columns.
    """
    if len(predicted) != len(query_obs):
        raise InputError(f"predictions: {len(predicted)} rows but the query has {len(query_obs)} cells")
    label_key = group["label_key"]
    table = pd.DataFrame({"cell": query_obs.index.astype(str), "true_label": query_obs[label_key].astype(str).to_numpy()})
    table = pd.concat([table, predicted.reset_index(drop=True)], axis=1)
    ontology_key = group.get("ontology_key")
    if ontology_key:
        table["true_cl"] = query_obs[ontology_key].astype(str).to_numpy()
        if "pred_cl" not in table:
            table["pred_cl"] = [(to_term or {}).get(p, p) for p in table["prediction"]]
    for key in group.get("continuous_keys", []):
        table[f"true_{key}"] = query_obs[key].to_numpy(float)
    return table


def sweep_column(threshold: float) -> str:
    """Name of the predictions column holding the labels at rejection threshold ``threshold``."""
    return f"sweep_{threshold:g}"


def predict_table(
    *,
    reference_obs: pd.DataFrame,
    query_obs: pd.DataFrame,
    distances: np.ndarray,
    indices: np.ndarray,
    self_distances: np.ndarray,
    group: dict,
    settings: dict,
    models: list | None = None,
    sweep: list[float] | tuple[float, ...] = (),
) -> pd.DataFrame:
    """Per query cell: true and predicted label, hit count, CL ids and fates where the group has them.

    ``settings`` is a transfer entry of the config (voter, min_hits,
    min_fraction, distance_quantile, significance); ``group`` a group entry
    (label_key, ontology_key, continuous_keys). With ``significance`` a hit
    counts when its empirical P-value is below ``p_cutoff`` (in a majority of
    ``models``, :mod:`cellquery.transfer.consensus`) instead of when it lies
    within the distance cut-off.

    ``sweep`` lists rejection thresholds t (e.g. 0.01-0.2, the Cell BLAST
    paper's Supp. Fig. 9c); for each one a column :func:`sweep_column` holds the
    labels predicted with the P-value cut-off t, or, for distance cut-offs, with
    the cut-off at quantile 1 - t of the reference's own hit distances (a hit is
    then as far as the farthest fraction t of reference-to-reference hits).
    """
    if len(indices) != len(query_obs):
        raise InputError(f"hits: {len(indices)} rows but the query has {len(query_obs)} cells")
    min_hits = settings.get("min_hits", 2)
    label_key = group["label_key"]
    reference_labels = reference_obs[label_key].astype(str).to_numpy()
    label_settings = dict(
        voter=settings["voter"], voter_params=settings.get("params"), min_hits=min_hits,
        min_fraction=settings.get("min_fraction", 0.5),
    )
    mask, extra = None, {}
    if settings.get("significance"):
        from cellquery.transfer.consensus import significant_by_consensus, significant_mask

        if not models:
            raise InputError("transfer: significance needs the models' embeddings and calibration")
        significance = settings["significance"]
        shrinkage = significance.get("shrinkage", 0.0)
        models = [replace(m, calibration=m.calibration.shrunk(shrinkage)) for m in models]
        distances, indices, mask, p = significant_by_consensus(models, p_cutoff=significance.get("p_cutoff", 0.05))
        max_distance = np.inf
        extra["best_hit_p"] = np.where(indices >= 0, p.max(axis=0), 1.0).min(axis=1)
        for t in sweep:
            extra[sweep_column(t)] = transfer_labels(
                reference_labels, distances, indices, mask=significant_mask(p, indices, t), **label_settings
            )["prediction"].to_numpy()
    else:
        max_distance = distance_cutoff(self_distances, settings.get("distance_quantile", 0.95))
        for t in sweep:
            extra[sweep_column(t)] = transfer_labels(
                reference_labels, distances, indices, max_distance=distance_cutoff(self_distances, 1.0 - t), **label_settings
            )["prediction"].to_numpy()
    predicted = transfer_labels(reference_labels, distances, indices, max_distance=max_distance, mask=mask, **label_settings)
    keys = list(group.get("continuous_keys", []))
    if keys:
        fates = transfer_continuous(
            reference_obs[keys].to_numpy(float), distances, indices, min_hits=min_hits, reference_labels=reference_labels,
            max_distance=max_distance, mask=mask, voter=settings["voter"], voter_params=settings.get("params"),
        )
        for j, key in enumerate(keys):
            predicted[f"pred_{key}"] = fates[:, j]
    for name, values in extra.items():
        predicted[name] = values
    ontology_key = group.get("ontology_key")
    to_term = label_to_term(reference_obs, label_key, ontology_key) if ontology_key else None
    return prediction_table(query_obs, group, predicted, to_term)
