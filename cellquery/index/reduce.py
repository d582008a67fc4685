"""Data-driven meta cells: a reduced reference whose points carry their members' label distribution.

An atlas of tens of millions of cells can be searched through far fewer points.
The points are chosen from the embedding alone, never from labels, so that a
change of annotation never invalidates them (and no setting is chosen with the
query's labels):

- ``kmeans``: k-means centroids (:class:`faiss.Kmeans`); every reference cell
  belongs to its nearest centroid.
- ``sketch``: a geometric sketch (Hie et al., Cell Systems 2019): the space is
  covered by equal hypercubes whose side is chosen so that about ``n`` of them
  are occupied, ``n`` occupied boxes are drawn uniformly and one cell from each,
  so that rare regions keep points while dense ones are thinned; every
  reference cell belongs to its nearest sketched cell. Hand-written: the
  ``geosketch`` package is not among the project's dependencies.

Each meta cell keeps its members' label counts (and the mean of their fate
vectors), and a query cell votes with the label distributions of its nearest
meta cells (:func:`meta_vote`): a meta cell of 90 B cells and 10 T cells gives
0.9 of a vote to B and 0.1 to T, so that the reduction keeps the votes'
composition rather than the majority label of each region. Rejection uses a
distance cut-off calibrated on the reference's own distances to the meta cells
(:func:`distance_cutoff`), as the project's majority transfer does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellquery.errors import InputError

METHODS = ("none", "kmeans", "sketch")
REJECTED, AMBIGUOUS = "rejected", "ambiguous"
# Bytes a meta cell costs beyond its vector: each stored (label, weight) pair of its distribution.
BYTES_PER_LABEL_ENTRY = 8
# k-means iterations (faiss's default is 25; 20 converges on embeddings of a few dozen dimensions)
KMEANS_ITER = 20


@dataclass
class MetaCells:
    """A reduced reference: ``vectors`` (m x d) searched instead of the cells, with their members' labels.

    ``label_counts[j, c]`` is the number of members of meta cell j with label
    ``labels[c]``; ``fates`` (m x F or None) the mean fate vector of its members;
    ``assignment`` the meta cell of every reference cell.
    """

    method: str
    vectors: np.ndarray
    labels: np.ndarray
    label_counts: np.ndarray
    assignment: np.ndarray
    fates: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.vectors)

    @property
    def sizes(self) -> np.ndarray:
        return self.label_counts.sum(axis=1)

    @property
    def label_distribution(self) -> np.ndarray:
        """Each meta cell's members' label shares (rows sum to 1)."""
        return self.label_counts / self.sizes[:, None]

    def nbytes(self) -> int:
        """Bytes of the reduced reference: float32 vectors, each distribution's non-zero (label, weight) pairs, fates."""
        size = self.vectors.shape[0] * self.vectors.shape[1] * 4
        size += int(np.count_nonzero(self.label_counts)) * BYTES_PER_LABEL_ENTRY
        if self.fates is not None:
            size += self.fates.size * 4
        return size


def _float32(X) -> np.ndarray:
    return np.ascontiguousarray(X, dtype=np.float32)


def nearest(X: np.ndarray, vectors: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances and ids of the ``k`` nearest ``vectors`` of each row of ``X`` (exact, faiss)."""
    import faiss

    index = faiss.IndexFlatL2(vectors.shape[1])
    index.add(_float32(vectors))
    d2, ids = index.search(_float32(X), min(k, len(vectors)))
    return np.sqrt(np.maximum(d2, 0.0)), ids


def kmeans_centroids(X: np.ndarray, n: int, seed: int, niter: int = KMEANS_ITER) -> np.ndarray:
    """``n`` k-means centroids of ``X`` (:class:`faiss.Kmeans`, seeded; every cell is used for training)."""
    import faiss

    X = _float32(X)
    km = faiss.Kmeans(X.shape[1], int(n), niter=niter, seed=int(seed), max_points_per_centroid=max(256, len(X) // n + 1))
    km.train(X)
    return np.asarray(km.centroids, dtype=np.float32)


def _occupied_boxes(X: np.ndarray, side: float) -> np.ndarray:
    """The box of every row of ``X`` in a grid of cubes of edge ``side`` (an inverse index into the occupied boxes)."""
    cells = np.floor((X - X.min(axis=0)) / side).astype(np.int64)
    # one 64-bit key per box (a random linear hash, wrapping; a collision among n boxes has
    # probability about n^2 / 2^64), so that np.unique sorts numbers rather than rows
    multipliers = np.random.default_rng(0).integers(1, 2**62, size=cells.shape[1], dtype=np.int64) | 1
    _, inverse = np.unique(cells @ multipliers, return_inverse=True)
    return inverse.ravel()


def grid_side(X: np.ndarray, n: int, iters: int = 40) -> float:
    """The largest cube edge (bisection) whose grid has at least ``n`` occupied boxes (``len(X) >= n``)."""
    X = np.asarray(X, dtype=np.float64)
    hi = float(np.ptp(X, axis=0).max()) * 2 + 1e-12  # one box holds everything
    lo = hi
    while _occupied_boxes(X, lo).max() + 1 < n:  # shrink until at least n boxes are occupied
        lo /= 2
        if lo < 1e-12:
            return lo
    for _ in range(iters):
        mid = (lo + hi) / 2
        if _occupied_boxes(X, mid).max() + 1 >= n:
            lo = mid
        else:
            hi = mid
    return lo


def geometric_sketch(X: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted rows of a geometric sketch of ``n`` cells: ``n`` occupied boxes drawn uniformly, one cell from each."""
    X = np.asarray(X, dtype=np.float64)
    if n >= len(X):
        return np.arange(len(X))
    rng = np.random.default_rng([int(seed), 1])
    boxes = _occupied_boxes(X, grid_side(X, n))
    # fewer occupied boxes than n only when cells coincide: one cell from each box then
    chosen = rng.choice(boxes.max() + 1, size=min(n, boxes.max() + 1), replace=False)
    order = np.argsort(boxes, kind="stable")
    starts = np.searchsorted(boxes[order], np.arange(boxes.max() + 2))
    rows = [order[starts[b] + rng.integers(starts[b + 1] - starts[b])] for b in chosen]
    return np.sort(np.asarray(rows, dtype=np.int64))


def _summarise(method, vectors, assignment, labels, fates) -> MetaCells:
    """Meta cells from vectors and the assignment of every cell; meta cells without members are dropped."""
    names, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    used = np.unique(assignment)
    remap = np.full(len(vectors), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    assignment = remap[assignment]
    counts = np.zeros((len(used), len(names)), dtype=np.int64)
    np.add.at(counts, (assignment, codes), 1)
    mean_fates = None
    if fates is not None:
        fates = np.asarray(fates, dtype=np.float64)
        sums = np.zeros((len(used), fates.shape[1]))
        np.add.at(sums, assignment, fates)
        mean_fates = (sums / counts.sum(axis=1)[:, None]).astype(np.float32)
    return MetaCells(method, _float32(vectors[used]), names, counts, assignment, mean_fates)


def reduce_reference(X, labels, *, method: str, n: int, seed: int = 0, fates=None) -> MetaCells:
    """Meta cells of a reference embedding ``X`` chosen from ``X`` alone; ``labels`` (and ``fates``) only summarised.

    ``method``: ``kmeans`` (``n`` centroids), ``sketch`` (``n`` sketched cells)
    or ``none`` (every cell its own meta cell, the unreduced reference).
    """
    X = _float32(X)
    if method not in METHODS:
        raise InputError(f"reduce.method: unknown {method!r} (known: {', '.join(METHODS)})")
    if method != "none" and not 1 <= int(n) <= len(X):
        raise InputError(f"reduce.n = {n}: give 1 .. {len(X)} (the reference's cells)")
    if method == "none":
        vectors, assignment = X, np.arange(len(X))
    else:
        vectors = kmeans_centroids(X, n, seed) if method == "kmeans" else X[geometric_sketch(X, n, seed)]
        assignment = nearest(X, vectors)[1][:, 0]
    return _summarise(method, vectors, assignment, labels, fates)


def distance_cutoff(X, meta: MetaCells, k: int, quantile: float = 0.95) -> float:
    """The ``quantile`` of the reference cells' distances to their ``k`` nearest meta cells (labels unused)."""
    distances, _ = nearest(X, meta.vectors, k)
    return float(np.quantile(distances, quantile))


def meta_vote(distances, ids, meta: MetaCells, *, cutoff: float, min_hits: int = 1, min_fraction: float = 0.5):
    """Predictions of query cells from their nearest meta cells (``distances``, ``ids``: cells x k).

    Hits farther than ``cutoff`` do not count; a cell with fewer than
    ``min_hits`` counted hits is ``rejected``. Each counted hit adds its meta
    cell's label distribution; the top label wins when its share of the votes
    exceeds ``min_fraction``, else the cell is ``ambiguous``. Returns
    (predictions, top share, fates: the mean over counted hits of their
    members' mean fates, or None; NaN for rejected cells).
    """
    distances, ids = np.asarray(distances), np.asarray(ids)
    valid = (distances <= cutoff) & (ids >= 0)
    dist = meta.label_distribution
    votes = np.zeros((len(ids), len(meta.labels)))
    for j in range(ids.shape[1]):
        rows = valid[:, j]
        votes[rows] += dist[ids[rows, j]]
    total = votes.sum(axis=1)
    top = votes.argmax(axis=1)
    share = np.divide(votes.max(axis=1), total, out=np.zeros(len(ids)), where=total > 0)
    accepted = valid.sum(axis=1) >= min_hits
    predictions = np.where(share > min_fraction, meta.labels[top], AMBIGUOUS).astype(object)
    predictions[~accepted] = REJECTED
    fates = None
    if meta.fates is not None:
        weights = valid.astype(np.float64)
        sums = np.einsum("qk,qkf->qf", weights, meta.fates[np.maximum(ids, 0)])
        fates = sums / np.maximum(weights.sum(axis=1), 1)[:, None]
        fates[~accepted] = np.nan
    return predictions, share, fates


# --- reduced indexes of the workflow (config ``indexes.<name>.reduce``) ---

VOTERS = ("majority",)  # a meta cell votes with its label distribution: majority voting of its members


def reduce_spec(index_spec: dict | None) -> dict | None:
    """``{method, n}`` of an index that searches meta cells (config ``indexes.<name>.reduce``), or None."""
    spec = (index_spec or {}).get("reduce")
    if not spec or spec.get("method", "none") == "none":
        return None
    return {"method": str(spec["method"]), "n": int(spec["n"])}


def check_reduce(name: str, index_spec: dict) -> None:
    """A reduced index: a known method, ``n`` >= 1 and one shard (its meta cells are chosen from the whole reference)."""
    spec = index_spec.get("reduce")
    if not spec:
        return
    field = f"config: indexes.{name}.reduce"
    if spec.get("method") not in ("kmeans", "sketch"):
        raise InputError(f"{field}.method: give kmeans or sketch, not {spec.get('method')!r}")
    if not isinstance(spec.get("n"), int) or spec["n"] < 1:
        raise InputError(f"{field}.n: give the number of meta cells (an integer >= 1), not {spec.get('n')!r}")
    if index_spec.get("shards", 1) != 1:
        raise InputError(f"{field}: a reduced index is built as one shard (its meta cells come from the whole reference); drop shards")


def reduced_skip_reason(config: dict, index: str, transfer: str) -> str | None:
    """Why ``transfer`` cannot run on reduced index ``index`` (None when it can or the index is not reduced)."""
    if reduce_spec(config.get("indexes", {}).get(index)) is None:
        return None
    spec = config["transfers"].get(transfer, {})
    if "significance" in spec or "conformal" in spec:
        return "the index searches meta cells: P-values and conformal scores need the reference cells' own hits"
    if spec.get("voter", "majority") not in VOTERS:
        return f"the index searches meta cells, which vote with their label distributions (voter majority only, not {spec.get('voter')})"
    return None


def save_meta_cells(path, meta: MetaCells, fate_keys=(), n_reference: int | None = None) -> None:
    """Meta cells as an npz (keys: docs/formats.md); ``path`` may be an open file."""
    arrays = dict(
        method=np.array(meta.method),
        vectors=meta.vectors,
        labels=meta.labels.astype(str),
        label_counts=meta.label_counts,
        assignment=meta.assignment,
        fate_keys=np.asarray(list(fate_keys), dtype=str),
    )
    if meta.fates is not None:
        arrays["fates"] = meta.fates
    np.savez(path, **arrays)


def load_meta_cells(path) -> tuple[MetaCells, tuple[str, ...]]:
    """(meta cells, the names of their fate columns) of :func:`save_meta_cells`."""
    with np.load(path, allow_pickle=False) as f:
        meta = MetaCells(
            str(f["method"]), f["vectors"], f["labels"].astype(str), f["label_counts"], f["assignment"],
            f["fates"] if "fates" in f else None,
        )
        return meta, tuple(f["fate_keys"].astype(str))


def membership_matrix(meta: MetaCells):
    """Meta cells x reference cells (scipy CSR): row j is 1 / size over meta cell j's members (rows sum to 1)."""
    import scipy.sparse as sp

    n = len(meta.assignment)
    weights = 1.0 / meta.sizes[meta.assignment]
    return sp.csr_matrix((weights, (meta.assignment, np.arange(n))), shape=(meta.n, n))


def bytes_per_cell(meta: MetaCells) -> float:
    """Bytes of the reduced reference (:meth:`MetaCells.nbytes`) per reference cell it stands for."""
    return meta.nbytes() / len(meta.assignment)


def reduced_self_distances(reference_distances: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Distances from sampled reference cells to their ``k`` nearest meta cells: the hits a query cell would get.

    ``reference_distances`` (reference cells x >= k) are every reference
    cell's hits in the index of meta cells; the rows are those sampled by
    :func:`cellquery.index.calibration.sample_rows`, as for unreduced indexes.
    A reference cell is not a meta cell (k-means) or is one of very many
    (sketch), so nothing is left out.
    """
    from cellquery.index.calibration import sample_rows

    rows = sample_rows(len(reference_distances), seed=seed)
    return np.asarray(reference_distances[rows, :k], dtype=np.float32)


def index_bytes_per_cell(index_files, n_reference: int, meta: MetaCells | None = None) -> float:
    """Bytes an index costs per reference cell: its saved shard files plus, for meta cells, their label distributions and fates.

    The vectors of a reduced index are in its index file; what a meta cell
    adds is :meth:`MetaCells.nbytes` beyond its vector (each non-zero
    (label, weight) pair and its mean fates). The assignment of reference
    cells to meta cells is not needed for a search and is not counted.
    """
    import os

    size = sum(os.path.getsize(path) for path in index_files)
    if meta is not None:
        size += meta.nbytes() - meta.vectors.size * 4
    return size / max(int(n_reference), 1)
