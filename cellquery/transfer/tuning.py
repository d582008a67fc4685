"""Acceptance-rule settings chosen by validation inside the reference (config value ``auto``).

A benchmark must not choose a rejection setting by looking at the query's
labels. A transfer whose ``p_cutoff``, ``shrinkage`` (significance) or
``distance_quantile`` (distance cut-off) is ``auto`` gets them from the
reference alone, by cross-validation that imitates the query task:

- **folds**: each fold holds out a group of reference cell types, which play
  the query's *negative* types (types the reference lacks). Types are
  rotated so that every type is held out exactly once: min(5, T) folds for T
  types, i.e. one type per fold up to 5 types and about 20 % of the types
  per fold beyond. One reference batch (the group's first batch key) is the
  pseudo-query of a fold (leave-one-batch-out; batches taken in turn, a batch
  without any of the fold's held-out types skipped); with a single batch, a
  seeded random 30 % of the cells. The pseudo-reference is the reference
  minus the pseudo-query cells and minus every cell of the held-out types;
  the pseudo-query keeps its cells of the held-out types, as negatives.
- **per fold**: an exact index (faiss ``Flat``) of the pseudo-reference, the
  pseudo-query's k nearest hits and the pseudo-reference's own k + 1 nearest
  hits, from which :func:`~cellquery.index.calibration.calibrate_from_reference_hits`
  draws the calibration (local scales, empirical null) and the leave-one-out
  distances once; every grid point is then judged with the transfer's own
  rule (:func:`~cellquery.transfer.acceptance.accept_hits`, which shrinks the
  calibration, and :func:`~cellquery.transfer.transfer_labels` with the
  transfer's voter, ``min_hits`` and ``min_fraction``) and scored by the mean
  balanced accuracy of the Cell BLAST paper (MBA: the mean of MBA on positive
  and on negative types, positive = types of the pseudo-reference; no
  expected-prediction matrix).
- **choice**: the grid point with the largest MBA averaged over folds; ties
  (within 1e-12) go to the first point in grid order (keys in the order
  ``p_cutoff``, ``shrinkage``; values ascending), and :class:`TuningResult`
  says how many points tied.

Consensus transfers (``models: M > 1``) are tuned on model 0 alone, as a
single-model rule, and the chosen values are applied as they are to the
M-model consensus (the union of the models' hits, each counted when
significant in a strict majority of models): validating the consensus itself
would need models 1 .. M - 1 in every fold, M times the cost.

The tuning API takes the reference only; nothing about the query enters it.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.settings import TransferSettings

# the values tried for each setting that can be ``auto``, in grid order
GRID: dict[str, tuple[float, ...]] = {
    "p_cutoff": (0.005, 0.01, 0.02, 0.05, 0.1),
    "shrinkage": (0.0, 0.25, 0.5, 0.75, 1.0),
    "distance_quantile": (0.8, 0.9, 0.95, 0.99),
}
MAX_FOLDS = 5
QUERY_FRACTION = 0.3  # pseudo-query share of the cells when the reference has a single batch
TIE_TOLERANCE = 1e-12
# the tuning file, one row per (grid point, tuned setting): docs/formats.md
TUNING_COLUMNS = ["point", "setting", "value", "validation_mba", "mba_positive", "mba_negative", "tied", "chosen"]


@dataclass(frozen=True)
class Fold:
    """One validation split of the reference: rows of the pseudo-reference and pseudo-query, held-out types."""

    reference: np.ndarray
    query: np.ndarray
    held_out: tuple[str, ...]
    query_batch: str | None = None


@dataclass
class TuningResult:
    """The chosen value of every ``auto`` setting, its validation MBA and the whole grid.

    ``grid``: one row per grid point, in grid order: ``point``, the tuned
    settings, ``validation_mba`` (MBA averaged over folds), ``mba_positive``,
    ``mba_negative`` (averaged over the folds that have such types), ``tied``
    (within 1e-12 of the best) and ``chosen``; ``n_tied``: points at the best.
    """

    chosen: dict[str, float]
    validation_mba: float
    grid: pd.DataFrame
    n_tied: int
    folds: list[Fold]

    def table(self) -> pd.DataFrame:
        """The tuning file: the grid in long form, one row per (grid point, tuned setting), in grid order."""
        rows = [
            {**row, "setting": key, "value": row[key]}
            for row in self.grid.to_dict("records")
            for key in self.chosen
        ]
        return pd.DataFrame(rows, columns=TUNING_COLUMNS)


def chosen_from_table(table: pd.DataFrame) -> tuple[dict[str, float], float]:
    """The chosen values and their validation MBA from a tuning file (:meth:`TuningResult.table`)."""
    missing = [c for c in TUNING_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"tuning file: columns {missing} are missing")
    rows = table[table["chosen"].astype(str).str.lower() == "true"]
    if rows.empty or rows["point"].nunique() != 1:
        raise InputError("tuning file: exactly one grid point must be marked chosen")
    return dict(zip(rows["setting"].astype(str), rows["value"].astype(float))), float(rows["validation_mba"].iloc[0])


def read_tuning(path) -> tuple[dict[str, float], float]:
    """The chosen values and their validation MBA from the tuning file at ``path``."""
    from cellquery.io import read_table

    return chosen_from_table(read_table(path, required=TUNING_COLUMNS))


def reference_folds(labels, batches=None, *, seed: int = 0) -> list[Fold]:
    """The validation folds of a reference (module docstring): held-out types rotate, one batch is the query."""
    labels = np.asarray(labels, dtype=str)
    types = np.unique(labels)
    if len(types) < 2:
        raise InputError("tuning: the reference needs at least 2 cell types, one to hold out as a negative type")
    rng = np.random.default_rng(seed)
    groups = np.array_split(rng.permutation(types), min(MAX_FOLDS, len(types)))
    batches = None if batches is None else np.asarray(batches, dtype=str)
    names = [] if batches is None else sorted(set(batches))
    folds = []
    for f, held in enumerate(groups):
        is_held = np.isin(labels, held)
        if len(names) > 1:
            # leave one batch out, in turn; skip batches without the fold's held-out types
            turn = [names[(f + j) % len(names)] for j in range(len(names))]
            batch = str(next((b for b in turn if np.any(is_held & (batches == b))), turn[0]))
            in_query = batches == batch
        else:
            batch = None
            in_query = np.zeros(len(labels), dtype=bool)
            in_query[rng.choice(len(labels), size=max(1, round(QUERY_FRACTION * len(labels))), replace=False)] = True
        reference = np.flatnonzero(~in_query & ~is_held)
        if len(reference) >= 2 and in_query.any():
            folds.append(Fold(reference, np.flatnonzero(in_query), tuple(sorted(map(str, held))), batch))
    if not folds:
        raise InputError("tuning: no fold leaves a pseudo-reference of at least 2 cells and a pseudo-query")
    return folds


def grid_points(settings: TransferSettings, grid: Mapping[str, Sequence[float]] = GRID) -> list[dict[str, float]]:
    """Every combination of the ``auto`` settings' grid values, in grid order (first key outermost)."""
    keys = settings.auto_keys
    if not keys:
        raise InputError("tuning: the transfer has no 'auto' setting to tune")
    for key in keys:
        if not grid.get(key):
            raise InputError(f"tuning: no grid values for {key}")
    return [dict(zip(keys, map(float, values))) for values in itertools.product(*(grid[key] for key in keys))]


def _accepted(settings: TransferSettings, points, *, distances, indices, self_distances, model):
    """Per grid point: (distances, indices, mask) of the hits that count, by the project's accept_hits.

    P-value rules are evaluated once per shrinkage (one shrunk calibration
    and one set of P-values), each p_cutoff as one of accept_hits' sweep
    thresholds, which apply the same P < cut-off test as the rule itself.
    """
    from cellquery.transfer.acceptance import accept_hits

    common = dict(distances=distances, indices=indices, self_distances=self_distances)
    out = [None] * len(points)
    if settings.significance is None:
        for j, point in enumerate(points):
            hits = accept_hits(settings.resolved(point), **common)
            out[j] = (hits.distances, hits.indices, hits.mask)
        return out
    single = replace(settings, significance=replace(settings.significance, models=1))
    shrinkages = {}
    for j, point in enumerate(points):
        resolved = single.resolved(point).significance
        shrinkages.setdefault(resolved.shrinkage, []).append((j, resolved.p_cutoff))
    for shrinkage, members in shrinkages.items():
        cutoffs = sorted({p for _, p in members})
        rule = single.resolved({"p_cutoff": cutoffs[0], "shrinkage": shrinkage})
        hits = accept_hits(rule, **common, models=[model], sweep=cutoffs)
        for j, p in members:
            out[j] = (hits.distances, hits.indices, hits.sweep[p])
    return out


def fold_scores(embedding, labels, fold: Fold, settings: TransferSettings, points, *, k: int, seed: int) -> np.ndarray:
    """(n_points, 3): MBA (mean, positive, negative) of each grid point on one fold."""
    from cellquery.index import build_index
    from cellquery.index.calibration import calibrate_from_reference_hits
    from cellquery.metrics import mean_balanced_accuracy
    from cellquery.transfer import Model, transfer_labels

    reference, query = embedding[fold.reference], embedding[fold.query]
    reference_labels, query_labels = labels[fold.reference], labels[fold.query]
    index = build_index("faiss", reference, {"factory": "Flat"}, seed=seed)
    distances, indices = index.search(query, k)
    self_d, self_i = index.search(reference, min(k + 1, len(reference)))
    calibration, self_distances = calibrate_from_reference_hits(reference, self_d, self_i, k=k, seed=seed)
    model = Model(reference, query, indices, calibration)
    accepted = _accepted(
        settings, points, distances=distances, indices=indices, self_distances=self_distances, model=model
    )
    vote = dict(voter=settings.voter, voter_params=settings.params, min_hits=settings.min_hits, min_fraction=settings.min_fraction)
    reference_types = np.unique(reference_labels)
    scores, seen = np.empty((len(points), 3)), {}
    for j, (d, i, mask) in enumerate(accepted):
        predicted = transfer_labels(reference_labels, d, i, mask=mask, **vote)["prediction"].to_numpy(str)
        key = predicted.tobytes()  # grid points that predict alike are scored once
        if key not in seen:
            mba = mean_balanced_accuracy(query_labels, predicted, reference_types)
            seen[key] = mba["mean"], mba["positive"], mba["negative"]
        scores[j] = seen[key]
    return scores


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over folds (axis 0), ignoring folds without such types (NaN where none has them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=0)


def tune_transfer(
    reference_embedding: np.ndarray,
    reference_labels,
    reference_batches,
    settings: TransferSettings,
    *,
    k: int,
    seed: int,
    grid: Mapping[str, Sequence[float]] = GRID,
) -> TuningResult:
    """Choose every ``auto`` setting of a transfer by validation inside the reference (module docstring).

    ``reference_batches`` is one batch name per reference cell, or None (a
    single batch). ``k`` is the number of hits per query cell, as in the run;
    ``seed`` draws the folds and the calibration's null pairs. Only the keys
    of ``settings.auto_keys`` are tuned; explicit values stay as they are.
    """
    points = grid_points(settings, grid)
    embedding = np.ascontiguousarray(reference_embedding, dtype=np.float32)
    labels = np.asarray(reference_labels, dtype=str)
    if len(labels) != len(embedding):
        raise InputError(f"tuning: {len(labels)} labels for {len(embedding)} reference cells")
    folds = reference_folds(labels, reference_batches, seed=seed)
    per_fold = np.stack([fold_scores(embedding, labels, f, settings, points, k=k, seed=seed) for f in folds])
    mba = per_fold[:, :, 0].mean(axis=0)
    tied = mba >= mba.max() - TIE_TOLERANCE
    best = int(np.argmax(tied))  # the first point in grid order at the best MBA
    keys = list(points[0])
    grid_table = pd.DataFrame(points, columns=keys)
    grid_table.insert(0, "point", np.arange(len(points)))
    grid_table["validation_mba"] = mba
    grid_table["mba_positive"] = _nanmean(per_fold[:, :, 1])
    grid_table["mba_negative"] = _nanmean(per_fold[:, :, 2])
    grid_table["tied"] = tied
    grid_table["chosen"] = np.arange(len(points)) == best
    return TuningResult(dict(points[best]), float(mba[best]), grid_table, int(tied.sum()), folds)


def choose_voter(reference_labels, rows: np.ndarray, distances: np.ndarray, indices: np.ndarray,
                 voters: Sequence[str]) -> tuple[str, dict[str, float]]:
    """The voter with the largest MBA on reference cells ``rows``, voting with their own leave-self-out hits.

    ``reference_labels``: every reference cell's label (a ``pd.Categorical`` is used as
    it is). ``distances`` / ``indices``: the rows' hits in the reference without their own
    (:func:`cellquery.index.graph.drop_self_hits`). Each voter votes with no minimum fraction; its score is
    the mean balanced accuracy over the rows' types (every one a reference type, so the
    positive side of the Cell BLAST paper's MBA). Ties (within ``TIE_TOLERANCE``) go to the
    first voter in ``voters``. Only reference labels enter: nothing about a query.
    Returns (voter, {voter: MBA}).
    """
    from cellquery.metrics import mean_balanced_accuracy
    from cellquery.transfer import transfer_labels

    labels = (reference_labels if isinstance(reference_labels, pd.Categorical)  # as it is: 10^6 labels convert in ~0.4 s
              else pd.Categorical(np.asarray(reference_labels).astype(str)))
    truth = np.asarray(labels[np.asarray(rows)]).astype(str)
    types = sorted(set(truth))
    scores = {}
    for voter in voters:
        predicted = transfer_labels(labels, distances, indices, voter=voter, min_fraction=0.0)["prediction"]
        scores[voter] = float(mean_balanced_accuracy(truth, np.asarray(predicted).astype(str), types)["positive"])
    best = max(scores.values())
    return next(v for v in voters if scores[v] >= best - TIE_TOLERANCE), scores
