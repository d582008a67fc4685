"""Which hits count, and what a query cell's counted hits decide: the hit-acceptance rule.

Cell BLAST (Methods, "Hit-based predictions"): a query cell needs at least
``min_hits`` (default 2) significant hits, otherwise it is ``rejected``; the
winning label's share of the (weighted) votes must exceed ``min_fraction``
(default 50 %), otherwise the cell is ``ambiguous``; continuous annotations are
the mean over significant hits.

A hit is **significant** in one of two ways (config ``transfers.<name>``):

- **distance cut-off** (``distance_quantile``, 0.95): it exists (index >= 0)
  and lies within the quantile of the leave-one-out hit distances that
  reference cells get among themselves (stored by the index stage,
  :func:`cellquery.index.calibration.reference_self_distances`);
- **empirical P-value** (``significance: {p_cutoff, models, shrinkage}``):
  its distance, divided by the local scale of the reference cell it hits, is
  compared with the same ratio for random reference pairs (the calibration of
  :mod:`cellquery.index.calibration`); it counts when P < ``p_cutoff``. With
  several models (Cell BLAST, Methods, "Cell querying using posterior
  distance": models trained from different random starting points) the
  candidate hits of a query cell are the union of every model's hits, each
  gets a P-value in every model, and it counts when significant in a strict
  majority of the models. Cells of types a model never saw land near reference
  cells by chance, and by different chance in each model.

Hit distances for P-values are recomputed exactly from the embeddings, so hits
found by a compressed index (IVF-PQ) are judged on the same scale as the null.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
from numba import njit

from cellquery.errors import InputError
from cellquery.index.calibration import Calibration
from cellquery.settings import TransferSettings

REJECTED = "rejected"
AMBIGUOUS = "ambiguous"


def significant_hits(distances: np.ndarray, indices: np.ndarray, max_distance: float = np.inf) -> np.ndarray:
    """Boolean mask of hits that count: present (index >= 0) and within ``max_distance``."""
    return (indices >= 0) & (distances <= max_distance)


def label_rule(top: np.ndarray, share: np.ndarray, n_hits: np.ndarray, labels, min_hits: int, min_fraction: float) -> np.ndarray:
    """The predictions of cells whose top label code is ``top``: ``rejected`` below ``min_hits`` counted hits, else
    ``ambiguous`` where the top label's ``share`` is at most ``min_fraction``, else its name in ``labels``."""
    pred = np.asarray(labels, dtype=object)[top]
    pred[share <= min_fraction] = AMBIGUOUS
    pred[n_hits < min_hits] = REJECTED
    return pred


def decide(
    votes: np.ndarray, n_hits: np.ndarray, labels: np.ndarray, *, min_hits: int = 2, min_fraction: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Turn per-label vote totals into predictions with the rejection/ambiguity rule.

    ``votes`` is (n_query, n_labels), ``n_hits`` the number of significant hits
    per query cell and ``labels`` the label name of each column. A cell with
    fewer than ``min_hits`` hits is ``rejected``; a cell whose top label holds
    no more than ``min_fraction`` of the votes is ``ambiguous``. Returns the
    predictions and the top label's share of the votes.
    """
    total = votes.sum(axis=1)
    top = votes.argmax(axis=1)
    share = np.divide(votes[np.arange(len(votes)), top], total, out=np.zeros(len(votes)), where=total > 0)
    return label_rule(top, share, n_hits, labels, min_hits, min_fraction), share


@njit(nogil=True, cache=True)
def _top_labels(codes, weights, mask, top, top_vote, total):  # pragma: no cover - compiled
    """Per row the label code with the largest summed weight of counted hits (ties: the smaller code), that sum and the row's total.

    A row's counted hits are ordered by code (insertion sort, hit order kept within a
    code), so each label's weights are added in hit order; the total adds the labels'
    sums in code order. Weights are not negative.
    """
    k = codes.shape[1]
    order = np.empty(k, dtype=np.int64)
    for r in range(codes.shape[0]):
        m = 0
        for j in range(k):
            if mask[r, j]:
                c = codes[r, j]
                pos = m
                while pos > 0 and codes[r, order[pos - 1]] > c:
                    order[pos] = order[pos - 1]
                    pos -= 1
                order[pos] = j
                m += 1
        best, best_code, tot = 0.0, 0, 0.0
        a = 0
        while a < m:
            c = codes[r, order[a]]
            v = 0.0
            while a < m and codes[r, order[a]] == c:
                v += weights[r, order[a]]
                a += 1
            tot += v
            if v > best:
                best, best_code = v, c
        top[r] = best_code
        top_vote[r] = best
        total[r] = tot


def decide_hits(
    codes: np.ndarray, weights: np.ndarray, mask: np.ndarray, labels: np.ndarray, *, min_hits: int = 2,
    min_fraction: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`decide` of the votes of hits: ``codes`` (n, k) label codes into ``labels``, ``weights`` their votes, ``mask`` the counted ones.

    The same rule without the (n_query, n_labels) table of votes: per cell only the labels
    of its counted hits are summed (compiled; at 10^4 cells x 30 hits and 195 labels a
    few ms, where the dense table, its sum and argmax took 8). Shares equal the table's
    up to the order of the total's additions. Returns predictions, shares and the counted
    hits per cell.
    """
    top, share, n_hits = top_labels(codes, weights, mask)
    return label_rule(top, share, n_hits, labels, min_hits, min_fraction), share, n_hits


def top_labels(codes: np.ndarray, weights: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell the code of the label with the most votes of counted hits, its share of them and the counted hits
    (:func:`decide_hits` before the rule)."""
    n = len(codes)
    top, top_vote, total = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    if n:
        _top_labels(np.asarray(codes), np.asarray(weights, dtype=np.float64), np.asarray(mask, dtype=bool), top, top_vote, total)
    return top, np.divide(top_vote, total, out=np.zeros(n), where=total > 0), mask.sum(axis=1)


def distance_cutoff(self_distances: np.ndarray, quantile: float | None) -> float:
    """Cut-off from reference-to-reference hit distances: their ``quantile`` (None: no cut-off).

    A query hit farther away than almost every hit that reference cells get
    among themselves is not a credible hit.
    """
    if quantile is None:
        return float("inf")
    finite = self_distances[np.isfinite(self_distances)]
    return float(np.quantile(finite, quantile)) if finite.size else float("inf")


@njit(nogil=True, cache=True)
def _hit_distances(query, reference, indices, out):  # pragma: no cover - compiled
    """``out[q, j]`` = the float64 Euclidean distance of query row q and reference row ``indices[q, j]`` (inf for -1).

    A query's hit rows are first copied into a small buffer and then summed: the copies
    are independent loads whose cache misses overlap, where a sum straight from the
    reference waits on each row's miss behind the previous row's dependent additions.
    10^4 queries x 30 hits in 10^6 random rows (d = 32), one thread: 29 ms instead of
    56 ms, the same values (the sums run in the same order).
    """
    k, d = indices.shape[1], query.shape[1]
    buf = np.empty(k * d, dtype=reference.dtype)
    for q in range(indices.shape[0]):
        for j in range(k):
            r = indices[q, j]
            if r >= 0:
                for c in range(d):
                    buf[j * d + c] = reference[r, c]
        for j in range(k):
            if indices[q, j] < 0:
                out[q, j] = np.inf
                continue
            total = 0.0
            for c in range(d):
                diff = np.float64(buf[j * d + c]) - np.float64(query[q, c])
                total += diff * diff
            out[q, j] = np.sqrt(total)


def in_row_blocks(n: int, work, threads: int | None = None, serial_below: int = 4_096,
                  max_block: int | None = None) -> None:
    """Call ``work(start, stop)`` over blocks of ``range(n)``, one block per thread (``threads`` None: all cores).

    For work that releases the GIL (compiled kernels, numpy on large arrays) and writes
    rows independently; below ``serial_below`` rows (or with one thread) the blocks run in
    this thread. ``max_block``: no block has more rows (more blocks than threads then).
    """
    threads = threads or os.cpu_count() or 1
    if threads == 1 or n < serial_below:
        step = max(n, 1) if max_block is None else max_block
        for start in range(0, max(n, 1), step):
            work(start, min(start + step, n))
        return
    block = -(-n // threads) if max_block is None else min(-(-n // threads), max_block)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda start: work(start, min(start + block, n)), range(0, n, block)))


def exact_distances(query: np.ndarray, reference: np.ndarray, indices: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Euclidean distance of every hit (q, indices[q, j]) from the embeddings; inf where the index is -1.

    Summed in float64 over the dimensions, one hit at a time (compiled with numba:
    gathering the hits' rows into an (n, k, d) array first costs several times the
    arithmetic at 10^6 rows); ``threads`` workers take row blocks (None: all cores).
    """
    indices = np.asarray(indices)
    out = np.empty(indices.shape, dtype=np.float64)
    if indices.size == 0:
        return out
    query = np.asarray(query)
    reference = np.asarray(reference)
    if query.dtype not in (np.float32, np.float64):
        query = query.astype(np.float64)
    if reference.dtype not in (np.float32, np.float64):
        reference = reference.astype(np.float64)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    in_row_blocks(len(indices), lambda a, b: _hit_distances(query[a:b], reference, indices[a:b], out[a:b]), threads)
    return out


def p_values(distances: np.ndarray, indices: np.ndarray, calibration: Calibration) -> np.ndarray:
    """Empirical P-value of each hit: fraction of the null at or below its normalised distance (1 for -1 hits)."""
    scale = calibration.scale[np.where(indices >= 0, indices, 0)]
    normalised = distances / scale
    p = np.searchsorted(calibration.null, normalised, side="right") / len(calibration.null)
    return np.where(indices >= 0, p, 1.0)


def null_bound(n_null: int, p_cutoff: float) -> int:
    """M, the number of counts j in 0..n_null with ``j / n_null < p_cutoff``: P < p_cutoff exactly when fewer than M null values lie at or below the hit.

    ``j / n_null`` is the float quotient :func:`p_values` divides, increasing in j, so M is
    found by bisection (n_null + 1 when every count is below the cut-off).
    """
    lo, hi = 0, n_null + 1  # the first j with j / n_null >= p_cutoff lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if mid / n_null < p_cutoff:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(nogil=True, cache=True)
def _below(distances, indices, scale, bound, out):  # pragma: no cover - compiled
    """``out[q, j]`` = hit present and ``distances[q, j] / scale[hit] < bound`` (the quotient as numpy computes it)."""
    for q in range(indices.shape[0]):
        for j in range(indices.shape[1]):
            r = indices[q, j]
            out[q, j] = r >= 0 and distances[q, j] / scale[r] < bound


def significant(distances: np.ndarray, indices: np.ndarray, calibration: Calibration, p_cutoff: float,
                threads: int | None = None) -> np.ndarray:
    """The hits with P < ``p_cutoff``: ``p_values(distances, indices, calibration) < p_cutoff``, without the P-values.

    A hit's P is the count of null values at or below its normalised distance over the
    null's size N, so P < p_cutoff exactly when that count is below M =
    :func:`null_bound` (N, p_cutoff), that is when the normalised distance lies below the
    null's M-th smallest value: one division and comparison per hit instead of a binary
    search of the null (10^4 queries x 30 hits against a null of 10^5: 15 -> 2.7 ms, on ``threads`` workers).
    """
    distances, indices = np.asarray(distances), np.ascontiguousarray(indices, dtype=np.int64)
    if distances.shape != indices.shape:
        raise InputError(f"hits: distances {distances.shape} and indices {indices.shape} differ in shape")
    n_null = len(calibration.null)
    if n_null == 0:  # p_values divides by zero: NaN for every present hit, 1 for missing ones
        return (indices < 0) & (1.0 < p_cutoff)
    m = null_bound(n_null, p_cutoff)
    if m > n_null:  # every count is below the cut-off, missing hits (P = 1) included
        return np.ones(indices.shape, dtype=bool)
    bound = -np.inf if m == 0 else float(calibration.null[m - 1])
    out = np.empty(indices.shape, dtype=bool)
    if indices.size:
        scale = np.asarray(calibration.scale)
        in_row_blocks(len(indices), lambda a, b: _below(distances[a:b], indices[a:b], scale, bound, out[a:b]), threads)
    return out


@dataclass
class Model:
    """One model's view of a run: embeddings, its index hits and its calibration."""

    reference: np.ndarray
    query: np.ndarray
    indices: np.ndarray
    calibration: Calibration


def candidate_hits(models: list[Model]) -> np.ndarray:
    """Union of the models' hit lists per query cell (first occurrence kept, repeats set to -1)."""
    merged = np.concatenate([m.indices for m in models], axis=1)
    order = np.argsort(merged, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(merged, order, axis=1)
    repeat = np.zeros_like(merged, dtype=bool)
    repeat_sorted = np.zeros_like(sorted_ids, dtype=bool)
    repeat_sorted[:, 1:] = sorted_ids[:, 1:] == sorted_ids[:, :-1]
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    return np.where(repeat, -1, merged)


def significant_by_consensus(models: list[Model], *, p_cutoff: float = 0.05):
    """Candidate hits, their distances in the first model, P-values per model and the consensus mask.

    Returns ``(distances, indices, mask, p)``: ``distances`` are exact
    distances in the first model's embedding, ``p`` has shape
    (n_models, n_query, n_candidates) and ``mask`` is true where a strict
    majority of models finds the hit significant (P < ``p_cutoff``).
    """
    if not models:
        raise InputError("consensus: at least one model is needed")
    n_query = {len(m.query) for m in models}
    if len(n_query) != 1:
        raise InputError(f"consensus: the models embed different numbers of query cells {sorted(n_query)}")
    indices = candidate_hits(models)
    p = np.empty((len(models), *indices.shape))
    first_distances = None
    for j, model in enumerate(models):
        d = exact_distances(model.query, model.reference, indices)
        p[j] = p_values(d, indices, model.calibration)
        if j == 0:
            first_distances = d
    return first_distances, indices, significant_mask(p, indices, p_cutoff), p


def significant_mask(p: np.ndarray, indices: np.ndarray, p_cutoff: float) -> np.ndarray:
    """Hits significant (P < ``p_cutoff``) in a strict majority of the models; ``p`` is (n_models, n_query, n)."""
    votes = (p < p_cutoff).sum(axis=0)
    return (votes * 2 > len(p)) & (indices >= 0)


@dataclass
class AcceptedHits:
    """A run's hits and which of them count, at the run's own setting and at each sweep threshold.

    ``distances``/``indices``: the hits the voters see (with P-values, the
    union of every model's hits and their exact distances in the first model);
    ``mask``: the significant ones; ``sweep``: threshold -> mask at that
    threshold (a P-value cut-off t, or for distance cut-offs quantile 1 - t of
    the reference's own hit distances); ``best_hit_p``: per query cell the
    smallest P-value (majority over models) of its hits, with P-values only;
    ``p_value``: per query cell the P-value its rule compares with the cut-off
    (:func:`cell_p_values`), with P-values only.
    """

    distances: np.ndarray
    indices: np.ndarray
    mask: np.ndarray
    sweep: dict[float, np.ndarray] = field(default_factory=dict)
    best_hit_p: np.ndarray | None = None
    p_value: np.ndarray | None = None


def cell_p_values(p: np.ndarray, indices: np.ndarray, min_hits: int) -> np.ndarray:
    """Per query cell the P-value of the rule: not rejected at cut-off t exactly when it is below t.

    ``p`` is (n_models, n_query, n) as in :func:`significant_by_consensus`. A
    hit is significant at t in a strict majority of M models exactly when its
    r-th smallest P-value over the models is below t (r = M // 2 + 1); a cell
    has ``min_hits`` significant hits exactly when the ``min_hits``-th smallest
    of those is below t. That value is the cell's P-value (1 where the cell has
    fewer than ``min_hits`` hits; 0 when ``min_hits`` is 0).
    """
    if min_hits <= 0:
        return np.zeros(indices.shape[0])
    if min_hits > indices.shape[1]:
        return np.ones(indices.shape[0])
    consensus = np.where(indices >= 0, np.sort(p, axis=0)[len(p) // 2], 1.0)
    return np.partition(consensus, min_hits - 1, axis=1)[:, min_hits - 1]


def cell_scores(hits: AcceptedHits, top_fraction: np.ndarray, n_hits: np.ndarray) -> np.ndarray:
    """Per query cell its confidence that it belongs to a reference type (higher: more confident).

    With P-values, 1 - the cell's P-value (:func:`cell_p_values`); with a
    distance cut-off, the winning label's share of the votes ``top_fraction``
    times the fraction of the cell's hits that count (``n_hits`` of the hits
    present). Neither reads a label of the query.
    """
    if hits.p_value is not None:
        return 1.0 - hits.p_value
    present = (hits.indices >= 0).sum(axis=1)
    return np.asarray(top_fraction, float) * np.divide(n_hits, present, out=np.zeros(len(present)), where=present > 0)


def accept_hits(
    settings: TransferSettings,
    *,
    distances: np.ndarray,
    indices: np.ndarray,
    self_distances: np.ndarray,
    models: list[Model] | None = None,
    sweep: tuple[float, ...] | list[float] = (),
) -> AcceptedHits:
    """Apply the transfer's acceptance rule (distance cut-off, or P-values over ``models``) to a run's hits."""
    if settings.needs_tuning:
        raise InputError(
            f"transfer: {', '.join(settings.auto_keys)} is 'auto'; resolve it from the tuning file first "
            "(TransferSettings.resolved, cellquery.transfer.tuning)"
        )
    significance = settings.significance
    if significance is None:
        max_distance = distance_cutoff(self_distances, settings.distance_quantile)
        by_threshold = {t: significant_hits(distances, indices, distance_cutoff(self_distances, 1.0 - t)) for t in sweep}
        return AcceptedHits(distances, indices, significant_hits(distances, indices, max_distance), by_threshold)
    if not models:
        raise InputError("transfer: significance needs the models' embeddings and calibration")
    models = [replace(m, calibration=m.calibration.shrunk(significance.shrinkage)) for m in models]
    distances, indices, mask, p = significant_by_consensus(models, p_cutoff=significance.p_cutoff)
    by_threshold = {t: significant_mask(p, indices, t) for t in sweep}
    best_hit_p = np.where(indices >= 0, p.max(axis=0), 1.0).min(axis=1)
    return AcceptedHits(distances, indices, mask, by_threshold, best_hit_p, cell_p_values(p, indices, settings.min_hits))
