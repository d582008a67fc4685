"""Annotation transfer from a query cell's reference hits.

A voter turns hits into per-label votes (one module per voter, registered in
:data:`VOTERS`); the hit-acceptance rule of :mod:`cellquery.transfer.acceptance` decides which
hits count and turns votes into a label, ``ambiguous`` or ``rejected``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.registry import Registry
from cellquery.settings import GroupSettings, TransferSettings
from cellquery.transfer import conformal as conformal_rule
from cellquery.transfer.acceptance import (
    AMBIGUOUS, REJECTED, Model, accept_hits, cell_scores, decide_hits, distance_cutoff, in_row_blocks, label_rule,
    significant_hits, top_labels,
)
from cellquery.transfer.conformal import ConformalCalibration
from cellquery.transfer.kernel import mapping_matrix
from cellquery.transfer.presence import mapped_presence, transfer_mapping

# name -> weights(codes, mask, distances, label_frequency, **params) -> (n, k) vote weights
VOTERS = Registry(
    "voter",
    "transfers.<name>.voter",
    {
        "majority": "cellquery.transfer.majority:weights",
        "distance_weighted": "cellquery.transfer.distance_weighted:weights",
        "kernel": "cellquery.transfer.kernel:weights",
        "balanced": "cellquery.transfer.balanced:weights",
    },
)
CHUNK = 100_000

__all__ = [
    "VOTERS", "Model", "transfer_labels", "transfer_continuous", "predict_table", "prediction_table",
    "label_to_term", "sweep_column", "REJECTED", "AMBIGUOUS", "distance_cutoff",
]


def _check(voter: str, distances: np.ndarray, indices: np.ndarray, mask: np.ndarray | None) -> None:
    VOTERS[voter]  # an unknown voter is an InputError naming the config key
    if distances.shape != indices.shape or (mask is not None and mask.shape != indices.shape):
        raise InputError(f"hits: distances {distances.shape} and indices {indices.shape} differ in shape")


def _counted(distances, indices, mask, max_distance, start: int, stop: int):
    """Rows ``start:stop`` as (distances, indices, mask of the hits that count)."""
    d, i = distances[start:stop], indices[start:stop]
    m = significant_hits(d, i, max_distance)
    if mask is not None:
        m &= mask[start:stop]
    return d, i, m


def _chunks(distances, indices, mask, max_distance):
    """Row chunks of (distances, indices, significant-hit mask)."""
    for start in range(0, len(indices), CHUNK):
        yield start, *_counted(distances, indices, mask, max_distance, start, start + CHUNK)


def _label_table(reference_labels) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(names, raw, to_code, counts)``: :func:`label_codes`'s names, and its codes as ``to_code[raw]``.

    ``raw`` is one small integer per reference cell (a Categorical's own codes, read
    without a copy), ``to_code`` maps it to the code into the sorted names and ``counts``
    holds each name's number of cells. A transfer then needs codes for its hits only
    (``to_code[raw[hits]]``), not for every reference cell.
    """
    if isinstance(getattr(reference_labels, "dtype", None), pd.CategoricalDtype):
        cat = pd.Categorical(reference_labels)
        raw = np.asarray(cat.codes)
        if not (raw < 0).any():
            names, inverse = np.unique(np.asarray(cat.categories.astype(str), dtype=str), return_inverse=True)
            per_category = np.bincount(raw, minlength=len(cat.categories))
            counts = np.bincount(inverse.ravel(), weights=per_category, minlength=len(names)).astype(np.int64)
            used = counts > 0
            return names[used], raw, (np.cumsum(used) - 1)[inverse.ravel()], counts[used]
    codes, uniques = pd.factorize(np.asarray(reference_labels, dtype=str).ravel(), sort=True)
    return np.asarray(uniques, dtype=str), codes.astype(np.intp), np.arange(len(uniques)), np.bincount(codes, minlength=len(uniques))


def label_codes(reference_labels) -> tuple[np.ndarray, np.ndarray]:
    """Distinct labels as sorted str and each reference cell's code into them.

    The same as ``np.unique(np.asarray(reference_labels, dtype=str), return_inverse=True)``;
    a pandas Categorical (or categorical Series) is coded from its categories, anything
    else by ``pandas.factorize`` (a hash table: a million labels in a tenth of a second,
    where sorting them as strings takes most of a second).
    """
    names, raw, to_code, _ = _label_table(reference_labels)
    return names, to_code[raw]


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
    threads: int | None = None,
) -> pd.DataFrame:
    """Predict a label per query cell from its hits.

    A hit counts when it exists, lies within ``max_distance`` and, if
    ``mask`` is given (e.g. significant P-values), is set there. Returns a
    table with ``prediction``, ``n_hits`` (counted hits) and ``top_fraction``
    (the winning label's share of the weighted votes). Row blocks of at most
    :data:`CHUNK` cells are voted on ``threads`` workers (None: all cores; numpy and
    the compiled count release the GIL); each cell's vote reads its own row only, so
    the blocks do not change it.
    """
    _check(voter, distances, indices, mask)
    vote = VOTERS[voter]
    labels, raw, to_code, counts = _label_table(reference_labels)
    frequency = counts / max(len(raw), 1)
    n = len(indices)
    top, share, n_hits = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n, dtype=np.int64)

    def block(a: int, b: int) -> None:
        d, i, m = _counted(distances, indices, mask, max_distance, a, b)
        codes = to_code[raw[np.where(i >= 0, i, 0)]]
        top[a:b], share[a:b], n_hits[a:b] = top_labels(codes, vote(codes, m, d, frequency, **(voter_params or {})), m)

    in_row_blocks(n, block, threads, max_block=CHUNK)
    return pd.DataFrame({"prediction": label_rule(top, share, n_hits, labels, min_hits, min_fraction), "n_hits": n_hits,
                         "top_fraction": share})


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
        labels, codes_ref = label_codes(reference_labels)  # np.unique's names and codes, without sorting strings
        frequency = np.bincount(codes_ref, minlength=len(labels)) / len(codes_ref)
    out = np.full((len(indices), reference_values.shape[1]), np.nan)
    for start, d, i, m in _chunks(distances, indices, mask, max_distance):
        w = VOTERS[voter](codes_ref[np.where(i >= 0, i, 0)], m, d, frequency, **(voter_params or {}))
        M = mapping_matrix(i, w, len(reference_values))
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


def prediction_table(
    query_obs: pd.DataFrame, group: GroupSettings, predicted: pd.DataFrame, to_term: dict | None = None
) -> pd.DataFrame:
    """The per-cell predictions file: truth beside prediction (columns: docs/formats.md).

    ``predicted`` holds ``prediction`` and any ``pred_<continuous key>`` and
    extra columns, one row per query cell in query order. Where the group has
    an ontology key, ``true_cl`` and ``pred_cl`` are added (``pred_cl`` from
    ``to_term``, the reference's label-to-term map, unless ``predicted``
    already has it); continuous keys add ``true_<key>`` columns.
    """
    if len(predicted) != len(query_obs):
        raise InputError(f"predictions: {len(predicted)} rows but the query has {len(query_obs)} cells")
    table = pd.DataFrame({"cell": query_obs.index.astype(str), "true_label": query_obs[group.label_key].astype(str).to_numpy()})
    table = pd.concat([table, predicted.reset_index(drop=True)], axis=1)
    if group.ontology_key:
        table["true_cl"] = query_obs[group.ontology_key].astype(str).to_numpy()
        if "pred_cl" not in table:
            table["pred_cl"] = [(to_term or {}).get(p, p) for p in table["prediction"]]
    for key in group.continuous_keys:
        table[f"true_{key}"] = query_obs[key].to_numpy(float)
    return table


def sweep_column(threshold: float) -> str:
    """Name of the predictions column holding the labels at rejection threshold ``threshold``."""
    return f"sweep_{threshold:g}"


def add_fates(predicted: pd.DataFrame, reference_obs: pd.DataFrame, group: GroupSettings, reference_labels, distances,
              indices, mask, vote: dict, rejected: np.ndarray | None = None) -> None:
    """``pred_<key>`` columns of the group's continuous keys, transferred over the counted hits (NaN where ``rejected``)."""
    keys = list(group.continuous_keys)
    if not keys:
        return
    fates = transfer_continuous(
        reference_obs[keys].to_numpy(float), distances, indices, mask=mask, reference_labels=reference_labels, **vote
    )
    if rejected is not None:
        fates[rejected] = np.nan
    for j, key in enumerate(keys):
        predicted[f"pred_{key}"] = fates[:, j]


def predict_table(
    *,
    reference_obs: pd.DataFrame,
    query_obs: pd.DataFrame,
    distances: np.ndarray,
    indices: np.ndarray,
    self_distances: np.ndarray,
    group: GroupSettings,
    settings: TransferSettings,
    models: list[Model] | None = None,
    conformal: ConformalCalibration | None = None,
    sweep: list[float] | tuple[float, ...] = (),
    return_mapping: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, "sp.csr_matrix"]:
    """Per query cell: true and predicted label, hit count, CL ids and fates where the group has them.

    Which hits count is decided by :func:`cellquery.transfer.acceptance.accept_hits`
    (distance cut-off, or empirical P-values over ``models``). ``sweep`` lists
    rejection thresholds t (e.g. 0.01-0.2, the Cell BLAST paper's Supp. Fig.
    9c); for each one a column :func:`sweep_column` holds the labels predicted
    with the P-value cut-off t, or, for distance cut-offs, with the cut-off at
    quantile 1 - t of the reference's own hit distances. A conformal transfer
    (:func:`conformal_predictions`) needs model 0 in ``models`` and the index's
    ``conformal`` calibration. With ``return_mapping`` the transfer's mapping
    matrix M (query x reference, rows its voter's normalised weights of the
    counted hits, :func:`cellquery.transfer.presence.transfer_mapping`) is
    returned beside the table.
    """
    if len(indices) != len(query_obs):
        raise InputError(f"hits: {len(indices)} rows but the query has {len(query_obs)} cells")
    reference_labels = reference_obs[group.label_key].astype(str).to_numpy()
    run = dict(reference_obs=reference_obs, reference_labels=reference_labels, distances=distances, indices=indices,
               group=group, settings=settings, sweep=sweep)
    if settings.conformal is not None:
        predicted = conformal_predictions(**run, self_distances=self_distances, model=(models or [None])[0], conformal=conformal)
    else:
        predicted = hit_predictions(**run, self_distances=self_distances, models=models)
    mapping = predicted.attrs.pop("mapping")
    to_term = label_to_term(reference_obs, group.label_key, group.ontology_key) if group.ontology_key else None
    table = prediction_table(query_obs, group, predicted, to_term)
    return (table, mapping) if return_mapping else table


def add_presence(predicted: pd.DataFrame, reference_labels, distances, indices, mask, settings: TransferSettings) -> None:
    """Column ``presence_score`` (the reference's presence in the query carried back through M) and M in ``attrs``."""
    mapping = transfer_mapping(reference_labels, distances, indices, mask, settings.voter, settings.params)
    predicted["presence_score"] = mapped_presence(mapping)
    predicted.attrs["mapping"] = mapping


def hit_predictions(
    *, reference_obs, reference_labels, distances, indices, group, settings, sweep, self_distances, models
) -> pd.DataFrame:
    """Per-cell predictions of a distance cut-off or significance transfer (columns of :func:`predict_table`)."""
    hits = accept_hits(settings, distances=distances, indices=indices, self_distances=self_distances, models=models, sweep=sweep)
    vote = dict(voter=settings.voter, voter_params=settings.params, min_hits=settings.min_hits)
    labels = dict(vote, min_fraction=settings.min_fraction)
    predicted = transfer_labels(reference_labels, hits.distances, hits.indices, mask=hits.mask, **labels)
    add_fates(predicted, reference_obs, group, reference_labels, hits.distances, hits.indices, hits.mask, vote)
    add_presence(predicted, reference_labels, hits.distances, hits.indices, hits.mask, settings)
    if hits.best_hit_p is not None:
        predicted["best_hit_p"] = hits.best_hit_p
    if hits.p_value is not None:
        predicted["p_value"] = hits.p_value
    predicted["score"] = cell_scores(hits, predicted["top_fraction"].to_numpy(), predicted["n_hits"].to_numpy())
    for t, mask in hits.sweep.items():
        predicted[sweep_column(t)] = transfer_labels(reference_labels, hits.distances, hits.indices, mask=mask, **labels)[
            "prediction"
        ].to_numpy()
    return predicted


def conformal_predictions(
    *,
    reference_obs: pd.DataFrame,
    reference_labels: np.ndarray,
    distances: np.ndarray,
    indices: np.ndarray,
    group: GroupSettings,
    settings: TransferSettings,
    sweep: list[float] | tuple[float, ...],
    self_distances: np.ndarray,
    model: Model | None,
    conformal: ConformalCalibration | None,
) -> pd.DataFrame:
    """Per-cell predictions of a conformal transfer: the distance cut-off's vote, rejected where the conformal P < alpha.

    The vote is the one a distance cut-off transfer with the same settings
    makes (hits within ``distance_quantile`` of the reference's own hit
    distances; fewer than ``min_hits`` of them: ``rejected``), so the rule
    only adds rejections to it; a labelled cell whose class-conditional
    conformal P-value (:mod:`cellquery.transfer.conformal`) is below
    ``alpha`` becomes ``rejected``, and so do its fates; a cell the vote
    leaves ambiguous is tested for its top label and stays ambiguous unless
    rejected. ``p_value`` holds the P-value (NaN for cells with fewer than
    ``min_hits`` hits), rejected when *small*, unlike the hit P-values of
    significance rules, and ``score`` the same P-value (0 for those cells);
    the sweep columns reject at P < t instead.
    """
    if model is None or conformal is None:
        raise InputError("transfer: a conformal transfer needs model 0's embeddings and the index's conformal calibration")
    if not np.array_equal(conformal.labels[conformal.codes], reference_labels):
        raise InputError("transfer: the conformal calibration was built for other reference labels (rebuild it)")
    if not isinstance(settings.distance_quantile, (int, float, type(None))):
        raise InputError(
            f"config: transfers: a conformal transfer's distance_quantile must be a number or null, "
            f"not {settings.distance_quantile!r} (its vote is not tuned)"
        )
    mask = accept_hits(settings, distances=distances, indices=indices, self_distances=self_distances).mask
    vote = dict(voter=settings.voter, voter_params=settings.params, min_hits=settings.min_hits)
    # the top label of every cell with enough hits, ambiguous or not: the type its P-value is computed for
    predicted = transfer_labels(reference_labels, distances, indices, mask=mask, min_fraction=0.0, **vote)
    label_codes = {label: code for code, label in enumerate(conformal.labels)}
    codes = np.array([label_codes.get(p, -1) for p in predicted["prediction"]], dtype=np.int64)
    k = settings.conformal.k
    scores = conformal_rule.query_scores(model.query, model.reference, conformal.codes, indices, codes, k=k)
    p = conformal_rule.p_values(scores, codes, conformal.scores(k), conformal.codes)
    rejected = p < settings.conformal.alpha
    labels = predicted["prediction"].to_numpy(dtype=object)
    labels[(codes >= 0) & (predicted["top_fraction"].to_numpy() <= settings.min_fraction)] = AMBIGUOUS
    add_fates(predicted, reference_obs, group, reference_labels, distances, indices, mask, vote, rejected=rejected)
    add_presence(predicted, reference_labels, distances, indices, mask, settings)
    predicted["prediction"] = np.where(rejected, REJECTED, labels)
    # the conformal P-value is the cell's confidence of belonging to its type (rejected when small);
    # cells with too few hits for a label score 0
    predicted["p_value"] = p
    predicted["score"] = np.nan_to_num(p, nan=0.0)
    for t in sweep:
        predicted[sweep_column(t)] = np.where(p < t, REJECTED, labels)
    return predicted
