"""Calibration of a reference index: local scales, the empirical null and leave-one-out hit distances.

Built once by the index stage with the same index that answers the queries,
stored beside it (``calibration.npz``, ``self_distances.npy``) and read by
the transfer stage, whose hit-acceptance rule
(:mod:`cellquery.transfer.acceptance`) turns a hit into a P-value or compares
it with a distance cut-off.

Cell BLAST (Methods, "Posterior distance estimation" and "Cell querying using
posterior distance") judges a hit by its normalised projection distance (NPD),
which rescales the local embedding space around each cell, and converts it to
an empirical P-value against the NPD of randomly chosen pairs of reference
cells (the empirical NULL). Sampling posteriors makes that slow. Here:

- the **local scale** of reference cell r is the distance to its k-th nearest
  other reference cell, computed once when the index is built, with that index
  (the ``ivf_gemm`` backend searches its own rows list by list,
  :func:`reference_hits`, and can scan fewer lists per row than its queries do:
  ``nprobe``, faster and approximate);
- a hit (q, r) at Euclidean distance d has **normalised distance** d / scale(r);
- the **empirical null** is the normalised distance of random reference pairs
  (a, b), a != b: ||x_a - x_b|| / scale(b).

**Shrinkage** (``shrinkage`` = a in [0, 1], chosen per transfer setting): the
scale used is scale(r)^(1 - a) * m^a, m the median scale. a = 0 is the purely
local scale above; a = 1 a global one (P-values then follow raw distances).
Purely local scales forgive far hits in sparse regions: a cell of a type the
reference lacks often lands next to sparse reference cells (rare or diffuse
types), whose large scale makes its hit look ordinary. The null keeps the raw
pair distances and the pairs' reference cells, so any shrinkage is applied at
transfer time from the one stored calibration.

The **leave-one-out hit distances** of a sample of reference cells (the hits
a query cell would get if it were that reference cell) set the plain distance
cut-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellquery.errors import InputError


@dataclass
class Calibration:
    """What the index stage stores for P-values.

    ``scale``: per-cell local scales; ``null``: the sorted normalised null;
    ``pair_distance`` / ``pair_reference``: the null's raw pair distances and
    the reference cell b that normalises each (kept so that the scales can be
    shrunk later, :meth:`shrunk`).
    """

    scale: np.ndarray  # (n_reference,) float32
    null: np.ndarray  # (n_pairs,) sorted float64
    pair_distance: np.ndarray | None = None  # (n_pairs,) float64
    pair_reference: np.ndarray | None = None  # (n_pairs,) int64

    def save(self, path) -> None:
        pairs = {} if self.pair_distance is None else {"pair_distance": self.pair_distance, "pair_reference": self.pair_reference}
        np.savez(path, scale=self.scale, null=self.null, **pairs)

    @classmethod
    def load(cls, path) -> "Calibration":
        try:
            with np.load(path) as data:
                pairs = {k: data[k] for k in ("pair_distance", "pair_reference") if k in data}
                return cls(scale=data["scale"], null=data["null"], **pairs)
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path}: not a calibration file (scale, null): {exc}") from exc

    @classmethod
    def from_pairs(cls, scale: np.ndarray, pair_distance: np.ndarray, pair_reference: np.ndarray) -> "Calibration":
        """Calibration whose null is ``pair_distance / scale[pair_reference]``, sorted."""
        return cls(
            scale=scale, null=np.sort(pair_distance / scale[pair_reference]),
            pair_distance=pair_distance, pair_reference=pair_reference,
        )

    def shrunk(self, shrinkage: float) -> "Calibration":
        """The calibration with scales scale^(1 - a) * median(scale)^a and the null renormalised by them."""
        if not 0.0 <= shrinkage <= 1.0:
            raise InputError(f"config: transfers: significance shrinkage must be in [0, 1], got {shrinkage}")
        if shrinkage == 0.0:
            return self
        if self.pair_distance is None:
            raise InputError("calibration: no null pairs stored, so its scales cannot be shrunk (rebuild the index)")
        scale = shrink_scales(self.scale, shrinkage)
        return Calibration.from_pairs(scale, self.pair_distance, self.pair_reference)


def shrink_scales(scale: np.ndarray, shrinkage: float) -> np.ndarray:
    """scale^(1 - a) * median(scale)^a (a = ``shrinkage``): local scales pulled toward the global median."""
    median = float(np.median(scale))
    return (scale.astype(np.float64) ** (1.0 - shrinkage) * median**shrinkage).astype(np.float32)


def scales_from_hits(distances: np.ndarray, indices: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Distance to the k-th hit that is not the row itself (self may sit anywhere, or be missing)."""
    others = (indices != rows[:, None]) & (indices >= 0)
    rank = np.cumsum(others, axis=1)
    pos = np.argmax(rank >= k, axis=1)
    found = rank[:, -1] >= k
    return np.where(found, distances[np.arange(len(rows)), pos], distances[:, -1]).astype(np.float32)


def floor_scales(scale: np.ndarray) -> np.ndarray:
    """Replace zero scales (duplicated cells) by the smallest positive one."""
    positive = scale[scale > 0]
    return np.maximum(scale, float(np.min(positive)) if positive.size else 1.0)


def _leaf_searcher(index, n: int, nprobe: int | None):
    """``index`` if it can search its own ``n`` rows in leaves (ivf_gemm built from the reference, no ``nprobe``), else an error."""
    if not hasattr(index, "leaf_reference_search") or getattr(index, "n", None) != n or nprobe is not None:
        raise InputError(f"calibration: a leaf search needs the ivf_gemm backend built from the reference (and no nprobe), "
                         f"not {getattr(index, 'backend', type(index).__name__)}")
    return index


def reference_hits(index, embedding: np.ndarray, k: int, *, nprobe: int | None = None,
                   batch_size: int = 50_000, leaves: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest reference cells of every reference cell (itself included), by ``index``.

    ``embedding`` holds the rows the index was built from, in order. An index with a
    ``reference_search`` (the ``ivf_gemm`` backend) searches its own rows list by list
    (:meth:`cellquery.index.ivf_gemm_backend.IvfGemmIndex.reference_search`, the same
    hits as ``index.search(embedding, k)``); ``nprobe`` there sets the lists each row
    scans (fewer than the index's own: faster, approximate). ``leaves`` (a dict of
    ``leaf_size``, ``nprobe``, ``candidates``, or empty for the defaults) searches it in
    leaves of its lists instead
    (:meth:`~cellquery.index.ivf_gemm_backend.IvfGemmIndex.leaf_reference_search`:
    each row scans its nearest leaves; approximate: 65 hits of 10^6 rows in 12.6 s instead of
    43.0 s with the one-shot index of :mod:`cellquery.bench.transfer`). Other
    indexes are searched in batches of rows (``nprobe`` and ``leaves`` must then be None).
    """
    if leaves is not None:
        return _leaf_searcher(index, len(embedding), nprobe).leaf_reference_search(k, **leaves)
    if hasattr(index, "reference_search") and getattr(index, "n", None) == len(embedding):
        return index.reference_search(k, nprobe)
    if nprobe is not None:
        raise InputError(f"calibration: nprobe applies to the ivf_gemm backend only, not {getattr(index, 'backend', type(index).__name__)}")
    n = len(embedding)
    D = np.empty((n, k), dtype=np.float32)
    I = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, batch_size):
        D[start : start + batch_size], I[start : start + batch_size] = index.search(embedding[start : start + batch_size], k)
    return D, I


def local_scales(index, embedding: np.ndarray, *, k: int, batch_size: int = 50_000, nprobe: int | None = None,
                 hits: tuple[np.ndarray, np.ndarray] | None = None, leaves: dict | None = None) -> np.ndarray:
    """Distance from every reference cell to its k-th nearest *other* reference cell (by ``index``).

    ``hits``: every reference cell's nearest reference cells (row r for cell r, at least
    k + 1 of them, as :func:`reference_hits` gives), in place of searching; ``nprobe``:
    see :func:`reference_hits`; ``leaves`` (ivf_gemm only, no ``hits``): the scales are read
    from a leaf search without keeping any hit
    (:meth:`~cellquery.index.ivf_gemm_backend.IvfGemmIndex.leaf_local_scales`).
    """
    n = len(embedding)
    k = max(1, min(k, n - 1))
    if leaves is not None and hits is None:
        return floor_scales(_leaf_searcher(index, n, nprobe).leaf_local_scales(k, **leaves))
    if hits is None:
        hits = reference_hits(index, embedding, k + 1, nprobe=nprobe, batch_size=batch_size)
    d, i = hits
    if d.shape[0] != n or d.shape[1] < min(k + 1, n):
        raise InputError(f"calibration: reference hits have shape {d.shape}, need ({n}, >= {min(k + 1, n)})")
    width = min(k + 1, d.shape[1])  # the k + 1 nearest hold the k-th other cell (as a search of k + 1)
    return floor_scales(scales_from_hits(d[:, :width], i[:, :width], np.arange(n), k))


def null_pairs(embedding: np.ndarray, *, n_pairs: int = 100_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` random reference pairs (a != b): their Euclidean distances and the cells b."""
    n = len(embedding)
    if n < 2:
        raise InputError("reference: at least 2 cells are needed for an empirical null")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, size=n_pairs)
    b = (a + rng.integers(1, n, size=n_pairs)) % n  # b != a, uniform over the others
    return np.linalg.norm(embedding[a].astype(np.float64) - embedding[b], axis=1), b


def null_distances(embedding: np.ndarray, scale: np.ndarray, *, n_pairs: int = 100_000, seed: int = 0) -> np.ndarray:
    """Sorted normalised distances of ``n_pairs`` random reference pairs (a != b): the empirical null."""
    d, b = null_pairs(embedding, n_pairs=n_pairs, seed=seed)
    return np.sort(d / scale[b])


def calibration_from_scales(embedding: np.ndarray, scale: np.ndarray, *, n_pairs: int = 100_000, seed: int = 0) -> Calibration:
    """The calibration of a reference whose local scales are known (the null drawn here)."""
    d, b = null_pairs(embedding, n_pairs=n_pairs, seed=seed)
    return Calibration.from_pairs(scale, d, b)


def calibrate_from_reference_hits(
    reference: np.ndarray, distances: np.ndarray, indices: np.ndarray, *, k: int, seed: int = 0
) -> tuple[Calibration, np.ndarray]:
    """Calibration and leave-one-out self distances from every reference cell's hits in its own index.

    ``distances``/``indices`` hold the min(k + 1, n) nearest reference cells of
    every reference cell (row r is cell r), as the index stage searches them.
    The local scale of a cell is its distance to its k-th nearest other cell;
    the self distances are the hit lists of :func:`sample_rows` without the
    cell itself.
    """
    rows = np.arange(len(reference))
    k_other = max(1, min(k, len(reference) - 1))
    calibration = calibration_from_scales(reference, floor_scales(scales_from_hits(distances, indices, rows, k_other)), seed=seed)
    sample = sample_rows(len(reference), seed=seed)
    return calibration, self_distances_from_hits(distances[sample], indices[sample], sample, k_other)


def calibrate(index, embedding: np.ndarray, *, k: int, n_pairs: int = 100_000, seed: int = 0, nprobe: int | None = None,
              hits: tuple[np.ndarray, np.ndarray] | None = None, leaves: dict | None = None) -> Calibration:
    """Local scales (with ``index``, or from the reference's own ``hits``) and the empirical null of one reference.

    ``nprobe``, ``hits`` and ``leaves``: see :func:`local_scales`.
    """
    scale = local_scales(index, embedding, k=k, nprobe=nprobe, hits=hits, leaves=leaves)
    return calibration_from_scales(embedding, scale, n_pairs=n_pairs, seed=seed)


def reference_self_distances(index, embedding: np.ndarray, *, k: int, seed: int = 0, n_sample: int = 2000) -> np.ndarray:
    """Leave-one-out hit distances of up to ``n_sample`` reference cells: (n_sample, k).

    Row r holds the distances from a sampled reference cell to its k nearest
    *other* reference cells: the hits a query cell would get if it were that
    reference cell. They are searched with the same index that answers the
    queries, so approximate indexes judge queries on their own distance scale.
    A cell's own entry is removed from its hit list wherever it appears
    (compressed indexes need not return it first, or at distance 0).
    """
    rows = sample_rows(len(embedding), n_sample, seed)
    k = min(k, len(embedding) - 1)
    if k < 1:
        return np.full((len(rows), 1), np.inf, dtype=np.float32)
    distances, indices = index.search(embedding[rows], k + 1)
    return self_distances_from_hits(distances, indices, rows, k)


def sample_rows(n: int, n_sample: int = 2000, seed: int = 0) -> np.ndarray:
    """The reference rows whose leave-one-out hits set the distance cut-off (sorted)."""
    return np.sort(np.random.default_rng(seed).choice(n, size=min(n_sample, n), replace=False))


def self_distances_from_hits(distances: np.ndarray, indices: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """(len(rows), k) distances to the k nearest hits that are not the row itself (inf-padded)."""
    out = np.full((len(rows), k), np.inf, dtype=np.float32)
    for r, (d, i) in enumerate(zip(distances, indices)):
        others = d[(i != rows[r]) & (i >= 0)][:k]
        out[r, : len(others)] = others
    return out
