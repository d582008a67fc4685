"""Calibrated hit significance: local scales and empirical P-values at index speed.

Cell BLAST (Methods, "Posterior distance estimation" and "Cell querying using
posterior distance") judges a hit by its normalised projection distance (NPD),
which rescales the local embedding space around each cell, and converts it to
an empirical P-value against the NPD of randomly chosen pairs of reference
cells (the empirical NULL). Sampling posteriors makes that slow. Here:

- the **local scale** of reference cell r is the distance to its k-th nearest
  other reference cell, computed once when the index is built, with that index;
- a hit (q, r) at Euclidean distance d has **normalised distance** d / scale(r);
- the **empirical null** is the normalised distance of random reference pairs
  (a, b), a != b: ||x_a - x_b|| / scale(b);
- the hit's **P-value** is the fraction of the null at or below its normalised
  distance. A hit counts when P < cut-off (0.05 by default).

Hit distances are recomputed exactly from the embeddings, so hits found by a
compressed index (IVF-PQ) are judged on the same scale as the null.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellquery.errors import InputError


@dataclass
class Calibration:
    """What the index stage stores for P-values: per-cell scales and the sorted null."""

    scale: np.ndarray  # (n_reference,) float32
    null: np.ndarray  # (n_pairs,) sorted float64

    def save(self, path) -> None:
        np.savez(path, scale=self.scale, null=self.null)

    @classmethod
    def load(cls, path) -> "Calibration":
        with np.load(path) as data:
            return cls(scale=data["scale"], null=data["null"])


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


def local_scales(index, embedding: np.ndarray, *, k: int, batch_size: int = 50_000) -> np.ndarray:
    """Distance from every reference cell to its k-th nearest *other* reference cell (by ``index``)."""
    n = len(embedding)
    k = max(1, min(k, n - 1))
    scale = np.empty(n, dtype=np.float32)
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n))
        d, i = index.search(embedding[rows], k + 1)
        scale[rows] = scales_from_hits(d, i, rows, k)
    return floor_scales(scale)


def null_distances(embedding: np.ndarray, scale: np.ndarray, *, n_pairs: int = 100_000, seed: int = 0) -> np.ndarray:
    """Sorted normalised distances of ``n_pairs`` random reference pairs (a != b): the empirical null."""
    n = len(embedding)
    if n < 2:
        raise InputError("reference: at least 2 cells are needed for an empirical null")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, size=n_pairs)
    b = (a + rng.integers(1, n, size=n_pairs)) % n  # b != a, uniform over the others
    d = np.linalg.norm(embedding[a].astype(np.float64) - embedding[b], axis=1)
    return np.sort(d / scale[b])


def calibrate(index, embedding: np.ndarray, *, k: int, n_pairs: int = 100_000, seed: int = 0) -> Calibration:
    """Local scales (with ``index``) and the empirical null of one reference."""
    scale = local_scales(index, embedding, k=k)
    return Calibration(scale=scale, null=null_distances(embedding, scale, n_pairs=n_pairs, seed=seed))


def exact_distances(query: np.ndarray, reference: np.ndarray, indices: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    """Euclidean distance of every hit (q, indices[q, j]) from the embeddings; inf where the index is -1."""
    out = np.full(indices.shape, np.inf, dtype=np.float64)
    for start in range(0, len(indices), chunk):
        i = indices[start : start + chunk]
        diff = reference[np.where(i >= 0, i, 0)].astype(np.float64) - query[start : start + chunk, None, :]
        out[start : start + chunk] = np.where(i >= 0, np.sqrt(np.einsum("qkd,qkd->qk", diff, diff)), np.inf)
    return out


def p_values(distances: np.ndarray, indices: np.ndarray, calibration: Calibration) -> np.ndarray:
    """Empirical P-value of each hit: fraction of the null at or below its normalised distance (1 for -1 hits)."""
    scale = calibration.scale[np.where(indices >= 0, indices, 0)]
    normalised = distances / scale
    p = np.searchsorted(calibration.null, normalised, side="right") / len(calibration.null)
    return np.where(indices >= 0, p, 1.0)
