"""Class-conditional split-conformal rejection: a P-value with a guarantee for every query cell.

A query cell is first labelled by voting over all its hits (the run's voter);
the rule then asks whether the cell is as close to reference cells of the
predicted type t as reference cells of type t are to each other:

- **nonconformity** of a cell x for type t: the Euclidean distance from x to
  its ``k``-th nearest reference cell of type t (exact distances in the
  embedding);
- **calibration scores** of type t: the same score for every reference cell
  of type t, computed against the reference **without the cell's own batch**
  (leave-one-batch-out, the group's first batch key), so that the calibration
  sees the shift a new study brings; a type found in one batch only, or a
  group without batches, is scored leave-one-out (without the cell itself);
- **conformal P-value** (split conformal prediction, class-conditional /
  Mondrian: Vovk et al., *Algorithmic Learning in a Random World*, 2005)::

      p(x) = (1 + #{calibration scores of type t >= s(x)}) / (n_t + 1)

  and the cell is ``rejected`` when p < ``alpha``.

If a query cell of type t is exchangeable with the reference cells of type t,
P(p <= alpha) <= alpha (leave-one-out is exact conformal prediction).

**Rank matched to the pool size.** Leaving out a batch scores a calibration
cell against the m type-t cells outside its batch, often about half of the
type's n_t reference cells, and the k-th-neighbour distance grows as the pool
shrinks (it depends on k / n): unmatched, the calibration scores would hold
the batch shift *and* a size bias, and the P-values would be far too large.
A calibration cell therefore uses its rank-``k (m + 1) / n_t`` neighbour
(linear interpolation between the integer ranks, at least rank 1): the same
neighbour share as a query cell's k-th of n_t, and exactly rank k for a
leave-one-out cell (m + 1 = n_t), where the exact conformal argument holds.
This keeps the batch shift, which the calibration should see, and removes
the size bias.

**Held-out folds through a refitted embedding (split conformal proper).**
An embedding fitted on the reference (PCA, scVI, ...) places its own
training cells differently from cells it never saw: a PCA of a few thousand
cells captures part of their noise, so reference cells lie farther apart
than a projected query cell lies from them (measured on the simulated group:
total variance 176 for the reference, 100 for a query study; the query's
5th own-type neighbour 8.1 against 12.0 for leave-one-batch-out reference
cells, and the rule rejected nothing). Split conformal prediction asks the
calibration cells to be as new to the model as the query is. With
``conformal_folds: F`` the reference is cut into F folds (whole batches of
the first batch key, assigned to folds by a seeded permutation; cells of a
group without batches are split per type at random), the embedding method
is fitted again on the reference without each fold and the fold is embedded
as its query (rule conformal_embed), and a held-out cell's calibration
distances are those to its own type's cells of the training part
(:func:`held_out_distances`), with the matched rank as above (m: the type's
cells in the training part). Cells of a type that no training part holds
keep the in-sample (index) calibration. A precomputed embedding (method
``given-<key>``) was fitted on no part of this reference, so its in-sample
calibration already treats reference and query alike.

The scores are found through the run's own nearest-neighbour index: each
reference cell's ``n_candidates`` nearest cells (over all shards) supply its
own-type, other-batch neighbours; the few cells whose list holds fewer than
``k`` of them are scored by an exact search over their type (faiss
``IndexFlatL2``). The cost is one index search of the reference with
``n_candidates`` hits, O(n_reference * n_candidates), stored beside the index
(``conformal.npz``). The Cell BLAST paper's own rule compares hits with random
reference pairs (empirical P-values, Methods "Cell querying using posterior
distance"); this rule has no counterpart in a library, so it is written here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import faiss
import numpy as np
from numba import njit

from cellquery.errors import InputError
from cellquery.transfer.acceptance import exact_distances, in_row_blocks

# Hits searched per reference cell for its own-type, other-batch neighbours
# before falling back to an exact search over its type.
N_CANDIDATES = 64


def _load_fields(cls, path, kind: str):
    """A dataclass whose every field is an array of the npz file ``path``; one line naming the file if it is not one."""
    names = [f.name for f in fields(cls)]
    try:
        with np.load(path) as data:
            return cls(**{name: data[name] for name in names})
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a {kind} file ({', '.join(names)}; delete it to rebuild it): {exc}") from exc


@dataclass
class ConformalCalibration:
    """Per reference cell: its label code and its distances to its nearest own-type cells.

    ``distances[r, j]`` is the distance from reference cell r to its (j+1)-th
    nearest reference cell of the same type outside its batch (leave-one-out
    where the type has no other batch); inf where there are fewer such cells.
    ``pool_sizes[r]`` is how many such cells there are (m). ``labels`` names
    the codes.
    """

    labels: np.ndarray  # (n_types,) str
    codes: np.ndarray  # (n_reference,) int64
    distances: np.ndarray  # (n_reference, k_max) float32
    pool_sizes: np.ndarray  # (n_reference,) int64

    def save(self, path) -> None:
        np.savez(path, labels=self.labels.astype(str), codes=self.codes, distances=self.distances, pool_sizes=self.pool_sizes)

    @classmethod
    def load(cls, path) -> "ConformalCalibration":
        return _load_fields(cls, path, "conformal calibration")

    def ranks(self, k: int) -> np.ndarray:
        """Every reference cell's matched neighbour rank k (m + 1) / n_t, at least 1 (module docstring)."""
        type_sizes = np.bincount(self.codes, minlength=len(self.labels))[self.codes]
        return np.maximum(k * (self.pool_sizes + 1.0) / type_sizes, 1.0)

    def scores(self, k: int) -> np.ndarray:
        """Every reference cell's nonconformity for its own type: its distance at its matched rank.

        Linear interpolation between the distances at the two integer ranks
        around :meth:`ranks` (inf where the pool lacks the upper one).
        """
        if not 1 <= k <= self.distances.shape[1]:
            raise InputError(
                f"config: transfers: conformal k = {k} must be between 1 and {self.distances.shape[1]} "
                "(the k the calibration was built with)"
            )
        rank = self.ranks(k)
        lower = np.floor(rank).astype(np.int64)
        upper = np.ceil(rank).astype(np.int64)
        rows = np.arange(len(rank))
        d_lower = self.distances[rows, lower - 1].astype(np.float64)
        d_upper = self.distances[rows, upper - 1].astype(np.float64)
        weight = rank - lower
        with np.errstate(invalid="ignore"):
            return np.where(weight > 0, (1.0 - weight) * d_lower + weight * d_upper, d_lower)


def _first_k(distances: np.ndarray, keep: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k smallest distances where ``keep`` (inf-padded), and how many there were."""
    masked = np.where(keep, distances, np.inf)
    masked.sort(axis=1)
    out = np.full((len(distances), k), np.inf)
    width = min(k, masked.shape[1])
    out[:, :width] = masked[:, :width]
    return out, keep.sum(axis=1)


def _exact_search(points: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
    """(len(points), k) exact nearest distances from points into pool (faiss IndexFlatL2), inf-padded."""
    out = np.full((len(points), k), np.inf)
    if len(pool) == 0 or len(points) == 0:
        return out
    index = faiss.IndexFlatL2(pool.shape[1])
    index.add(np.ascontiguousarray(pool, dtype=np.float32))
    width = min(k, len(pool))
    squared, _ = index.search(np.ascontiguousarray(points, dtype=np.float32), width)
    out[:, :width] = np.sqrt(np.maximum(squared, 0.0))
    return out


@njit(nogil=True, cache=True)
def _own_type_kernel(reference, rows, ids, codes, batch_codes, leave_batch, out, count):  # pragma: no cover - compiled
    k = out.shape[1]
    for a in range(len(rows)):
        r = rows[a]
        found = out[a]
        m = 0
        for j in range(ids.shape[1]):
            c = ids[a, j]
            if c < 0 or c == r or codes[c] != codes[r] or (leave_batch[r] and batch_codes[c] == batch_codes[r]):
                continue
            m += 1
            total = 0.0
            for d in range(reference.shape[1]):
                diff = np.float64(reference[c, d]) - np.float64(reference[r, d])
                total += diff * diff
            v = np.sqrt(total)
            if v < found[k - 1]:
                pos = k - 1
                while pos > 0 and found[pos - 1] > v:
                    found[pos] = found[pos - 1]
                    pos -= 1
                found[pos] = v
        count[a] = m


def _own_type_nearest(reference, rows, ids, codes, batch_codes, leave_batch, k, threads: int | None = None):
    """Per row: its k nearest candidates ``ids`` of its own type (other batches where ``leave_batch``), inf-padded, and how many candidates qualify.

    The same values as :func:`exact_distances` of the candidates followed by
    :func:`_first_k` of the qualifying ones, in one compiled pass (numba) that computes
    only the qualifying distances; ``threads`` workers take row blocks.
    """
    out = np.full((len(rows), k), np.inf)
    count = np.zeros(len(rows), dtype=np.int64)
    if len(rows) == 0:
        return out, count
    args = (np.ascontiguousarray(codes, dtype=np.int64), np.ascontiguousarray(batch_codes, dtype=np.int64),
            np.ascontiguousarray(leave_batch, dtype=np.bool_))
    in_row_blocks(len(rows), lambda a, b: _own_type_kernel(reference, rows[a:b], ids[a:b], *args, out[a:b], count[a:b]), threads)
    return out, count


def calibrate(
    reference: np.ndarray,
    labels,
    batches=None,
    *,
    search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]] | None = None,
    k: int,
    n_candidates: int = N_CANDIDATES,
    chunk: int = 50_000,
    rows: np.ndarray | None = None,
    reference_hits: tuple[np.ndarray, np.ndarray] | None = None,
    order: np.ndarray | None = None,
) -> ConformalCalibration:
    """Leave-one-batch-out distances of every reference cell to its ``k`` nearest own-type cells.

    ``search(x, n)`` returns the n nearest reference cells of rows ``x``
    (distances, global ids; -1 where missing), i.e. the run's index over all
    shards. ``batches`` None (or one batch) scores every cell leave-one-out.

    ``rows``: score only these reference rows (the others keep inf distances; their
    pool sizes are set all the same), e.g. the rows that no held-out fold replaces
    (:func:`in_sample_rows`). ``reference_hits``: the ids (and distances) of every
    reference row's nearest reference cells, row r for cell r, at least
    ``n_candidates + 1`` of them as ``search(reference, n_candidates + 1)`` would give
    (e.g. :meth:`cellquery.index.ivf_gemm_backend.IvfGemmIndex.reference_search`, shared
    with the local scales): used in place of ``search``. ``order``: with
    ``reference_hits``, a permutation of the reference rows that keeps near cells near
    (e.g. :meth:`cellquery.index.ivf_gemm_backend.IvfGemmIndex.list_order`); the cells
    are then scored on a copy of the reference in that order, so that a cell's
    candidates lie close in memory (at 10^6 cells, reading them in random order costs
    several times the arithmetic). The result does not depend on ``order``.
    """
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    n = len(reference)
    if n < 2:
        raise InputError("conformal: the reference needs at least 2 cells")
    names, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    batch_codes = np.zeros(n, dtype=np.int64) if batches is None else np.unique(np.asarray(batches).astype(str), return_inverse=True)[1]
    # a type with cells in only one batch is scored leave-one-out
    batches_per_type = np.array([len(np.unique(batch_codes[codes == t])) for t in range(len(names))])
    leave_batch = batches_per_type[codes] > 1
    # m: the own-type cells each cell is scored against (other batches, or the other cells)
    type_batch = np.zeros((len(names), batch_codes.max() + 1), dtype=np.int64)
    np.add.at(type_batch, (codes, batch_codes), 1)
    type_sizes = type_batch.sum(axis=1)
    pool_sizes = np.where(leave_batch, type_sizes[codes] - type_batch[codes, batch_codes], type_sizes[codes] - 1)
    n_search = min(n, n_candidates + 1)
    if reference_hits is None and search is None:
        raise InputError("conformal: calibrate needs a search function or the reference's own hits")
    if reference_hits is not None:
        hit_ids = np.asarray(reference_hits[1])
        if hit_ids.shape[0] != n or hit_ids.shape[1] < n_search:
            raise InputError(
                f"conformal: reference hits have shape {hit_ids.shape}, need ({n}, >= {n_search}) (every reference row's own hits)"
            )
    todo = np.arange(n) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
    out = np.full((n, k), np.inf)
    short = [np.zeros(0, dtype=np.int64)]
    if order is not None and reference_hits is not None:
        order = np.asarray(order, dtype=np.int64)
        if order.shape != (n,) or not np.array_equal(np.bincount(order, minlength=n), np.ones(n, dtype=np.int64)):
            raise InputError(f"conformal: order must be a permutation of the {n} reference rows")
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n)
        local = (reference[order], codes[order], batch_codes[order], leave_batch[order])
        todo = np.sort(position[todo])  # positions in ``order``
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        if order is not None and reference_hits is not None:
            ids = hit_ids[order[part], :n_search]
            ids = np.where(ids >= 0, position[np.maximum(ids, 0)], -1)
            found, count = _own_type_nearest(local[0], part, ids, *local[1:], k)
            part = order[part]
        else:
            ids = hit_ids[part, :n_search] if reference_hits is not None else search(reference[part], n_search)[1]
            found, count = _own_type_nearest(reference, part, np.ascontiguousarray(ids, dtype=np.int64), codes, batch_codes, leave_batch, k)
        out[part] = found
        short.append(part[count < k])
    # exact search over the type (other batches, or the other cells) where the candidates ran short
    short = np.sort(np.concatenate(short))
    for t in np.unique(codes[short]):
        of_type = np.flatnonzero(codes == t)
        needing = short[codes[short] == t]
        if not leave_batch[of_type[0]]:
            # leave-one-out: search k + 1 and drop the first entry, the cell itself at distance 0
            out[needing] = _exact_search(reference[needing], reference[of_type], k + 1)[:, 1:]
            continue
        for b in np.unique(batch_codes[needing]):
            rows = needing[batch_codes[needing] == b]
            out[rows] = _exact_search(reference[rows], reference[of_type[batch_codes[of_type] != b]], k)
    return ConformalCalibration(
        labels=names, codes=codes.astype(np.int64), distances=out.astype(np.float32), pool_sizes=pool_sizes.astype(np.int64)
    )


def query_scores(
    query: np.ndarray,
    reference: np.ndarray,
    reference_codes: np.ndarray,
    indices: np.ndarray,
    predicted_codes: np.ndarray,
    *,
    k: int,
) -> np.ndarray:
    """Each query cell's distance to its k-th nearest reference cell of its predicted type (-1: NaN).

    Taken from the cell's hits when they hold k cells of the type, else by an
    exact search over the type's reference cells.
    """
    query = np.ascontiguousarray(query, dtype=np.float32)
    scores = np.full(len(query), np.nan)
    labelled = np.flatnonzero(predicted_codes >= 0)
    if labelled.size == 0:
        return scores
    ids = indices[labelled]
    safe = np.where(ids >= 0, ids, 0)
    keep = (ids >= 0) & (reference_codes[safe] == predicted_codes[labelled][:, None])
    found, count = _first_k(exact_distances(query[labelled], reference, ids), keep, k)
    scores[labelled] = found[:, k - 1]
    short = labelled[count < k]
    for t in np.unique(predicted_codes[short]):
        rows = short[predicted_codes[short] == t]
        scores[rows] = _exact_search(query[rows], reference[reference_codes == t], k)[:, k - 1]
    return scores


def p_values(scores: np.ndarray, predicted_codes: np.ndarray, calibration_scores: np.ndarray, calibration_codes: np.ndarray) -> np.ndarray:
    """Class-conditional conformal P-values (1 + #{cal_t >= s}) / (n_t + 1); NaN where no type is predicted."""
    p = np.full(len(scores), np.nan)
    for t in np.unique(predicted_codes[predicted_codes >= 0]):
        rows = np.flatnonzero(predicted_codes == t)
        cal = np.sort(calibration_scores[calibration_codes == t])
        at_least = len(cal) - np.searchsorted(cal, scores[rows], side="left")
        p[rows] = (1.0 + at_least) / (len(cal) + 1.0)
    return p


def calibration_folds(labels, batches, n_folds: int, seed: int) -> np.ndarray:
    """The fold (0 .. n_folds - 1) of every reference cell for held-out calibration.

    With two or more batches, whole batches form the folds (a seeded
    permutation of the sorted batch names, batch i going to fold i mod F;
    with fewer batches than folds, the later folds are empty); without
    batches, each type's cells are dealt to the folds in a seeded random order.
    """
    labels = np.asarray(labels).astype(str)
    if n_folds < 2:
        raise InputError(f"config: conformal_folds = {n_folds}: held-out calibration needs at least 2 folds (0: in-sample only)")
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=np.int64)
    names = np.unique(np.asarray(batches).astype(str)) if batches is not None else np.array([])
    if len(names) >= 2:
        order = rng.permutation(len(names))
        fold_of = np.empty(len(names), dtype=np.int64)
        fold_of[order] = np.arange(len(names)) % n_folds
        return fold_of[np.searchsorted(names, np.asarray(batches).astype(str))]
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        folds[rng.permutation(rows)] = np.arange(len(rows)) % n_folds
    return folds


def held_out_distances(train: np.ndarray, train_codes: np.ndarray, held: np.ndarray, held_codes: np.ndarray, k: int):
    """Per held-out cell: distances to its k nearest training cells of its own type (inf-padded), and how many there are.

    Exact, one faiss ``IndexFlatL2`` per type over the training part.
    """
    out = np.full((len(held), k), np.inf)
    pools = np.zeros(len(held), dtype=np.int64)
    for t in np.unique(held_codes):
        rows = np.flatnonzero(held_codes == t)
        pool = np.asarray(train)[np.asarray(train_codes) == t]
        pools[rows] = len(pool)
        out[rows] = _exact_search(np.asarray(held)[rows], pool, k)
    return out, pools


def with_held_out(calibration: ConformalCalibration, rows: np.ndarray, distances: np.ndarray, pool_sizes: np.ndarray) -> ConformalCalibration:
    """``calibration`` with the held-out distances of reference cells ``rows`` in place of their in-sample ones.

    Rows whose type has no cell in the training part (pool size 0) keep the
    in-sample row.
    """
    rows = np.asarray(rows, dtype=np.int64)
    use = np.asarray(pool_sizes) > 0
    out = calibration.distances.copy()
    pools = calibration.pool_sizes.copy()
    out[rows[use]] = np.asarray(distances, dtype=np.float32)[use]
    pools[rows[use]] = np.asarray(pool_sizes)[use]
    return ConformalCalibration(labels=calibration.labels, codes=calibration.codes, distances=out, pool_sizes=pools)


@dataclass
class HeldOutFold:
    """One fold of held-out calibration: reference rows held out, rows trained on, and both embedded by the refitted model."""

    held_rows: np.ndarray  # (n_held,) int64, rows of the reference
    train_rows: np.ndarray  # (n_train,) int64
    held: np.ndarray  # (n_held, d) float32
    train: np.ndarray  # (n_train, d) float32

    def save(self, path) -> None:
        np.savez(path, held_rows=self.held_rows, train_rows=self.train_rows, held=self.held, train=self.train)

    @classmethod
    def load(cls, path) -> "HeldOutFold":
        return _load_fields(cls, path, "conformal fold")


def embed_fold(reference, genes, *, label_key: str, batch_key: str | None, n_folds: int, fold: int, embedding: str, params: dict, seed: int) -> HeldOutFold:
    """Fit ``embedding`` on the reference without fold ``fold`` (:func:`calibration_folds`) and embed the fold as its query.

    An empty fold (more folds than batches) gives an empty :class:`HeldOutFold`.
    """
    from cellquery.embed import embed_group

    folds = calibration_folds(
        reference.obs[label_key].to_numpy(), reference.obs[batch_key].to_numpy() if batch_key else None, n_folds, seed
    )
    held_rows, train_rows = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
    if held_rows.size == 0 or train_rows.size == 0:
        empty = np.zeros((0, 0), dtype=np.float32)
        return HeldOutFold(held_rows=held_rows, train_rows=train_rows, held=empty, train=empty)
    train, held = embed_group(
        reference[train_rows].copy(), reference[held_rows].copy(), genes, embedding=embedding, params=params, seed=seed
    )
    return HeldOutFold(
        held_rows=held_rows,
        train_rows=train_rows,
        held=np.asarray(held.obsm["X_emb"], dtype=np.float32),
        train=np.asarray(train.obsm["X_emb"], dtype=np.float32),
    )


def in_sample_rows(labels, folds) -> np.ndarray:
    """The reference rows whose in-sample calibration :func:`calibrate_held_out` keeps (sorted).

    A fold's held-out cell is replaced when its type has cells in the fold's training
    part (:func:`with_held_out`); the other rows are the only ones
    :func:`calibrate` needs to score (its ``rows``).
    """
    codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)[1].ravel()
    replaced = np.zeros(len(codes), dtype=bool)
    for fold in folds:
        held = np.asarray(fold.held_rows, dtype=np.int64)
        if len(held) == 0:
            continue
        trained = np.zeros(codes.max() + 1, dtype=bool)
        trained[codes[np.asarray(fold.train_rows, dtype=np.int64)]] = True
        replaced[held[trained[codes[held]]]] = True
    return np.flatnonzero(~replaced)


def calibrate_held_out(calibration: ConformalCalibration, folds, k: int) -> ConformalCalibration:
    """``calibration`` (in-sample) with every fold's held-out distances in place (:func:`with_held_out`)."""
    for fold in folds:
        if len(fold.held_rows) == 0:
            continue
        distances, pools = held_out_distances(
            fold.train, calibration.codes[fold.train_rows], fold.held, calibration.codes[fold.held_rows], k
        )
        calibration = with_held_out(calibration, fold.held_rows, distances, pools)
    return calibration
