"""Spatial graphs per section: radius graphs and k-hop ego-nets, sparse (SpatialSSL's two datasets).

SpatialSSL builds either one graph per image (cells are nodes, an edge joins
two cells within ``radius`` of each other) or cuts it into the ego-net of
every cell: the cells within ``k_hop`` edges of it, with the edges among them.

* :func:`radius_graph`: symmetric CSR adjacency (0/1, no self-loops) over all
  cells, edges only within a section. Each section's points go into a
  scikit-learn KD-tree (:class:`sklearn.neighbors.NearestNeighbors`) and are
  queried ``chunk_size`` cells at a time (``radius_neighbors_graph`` of the
  chunk), so working memory is one chunk's neighbour lists plus the output
  edges; a 10^6-cell section with ~10 neighbours per cell holds ~10^7 edges
  (int32 indices: ~80 MB). Distances are inclusive (``d <= radius``).
* :func:`k_hop_reach`: which cells are within ``k`` hops of each cell
  (sparse boolean powers of ``A + I``, a chunk of rows at a time).
* :func:`ego_net`: the nodes and induced adjacency of one cell's k-hop
  ego-net, centre first (breadth-first); :func:`iter_ego_nets` every cell's,
  from :func:`k_hop_reach` in batches of centres.
* :func:`hex_spacing`: the median nearest-neighbour distance (a Visium grid's
  centre-to-centre spacing), to set ``radius`` from the data.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from cellquery.errors import InputError

CHUNK_CELLS = 65536


def _check_coords(coords) -> np.ndarray:
    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] not in (2, 3) or not np.isfinite(coords).all():
        raise InputError(f"spatial coordinates must be finite, cells x 2 (or 3); got shape {coords.shape}")
    return coords


def _section_rows(n: int, sections) -> list[np.ndarray]:
    if sections is None:
        return [np.arange(n)]
    sections = np.asarray(sections)
    if sections.shape != (n,):
        raise InputError(f"sections: expected one section per cell ({n}), got shape {sections.shape}")
    _, codes = np.unique(sections.astype(str), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, bounds)


def radius_graph(coords, radius: float, sections=None, *, chunk_size: int = CHUNK_CELLS) -> sp.csr_matrix:
    """Adjacency (cells x cells CSR, float32 ones, symmetric, no self-loops) of cells within ``radius`` in one section."""
    coords = _check_coords(coords)
    if not np.isfinite(radius) or radius <= 0:
        raise InputError(f"radius must be a positive number, got {radius!r}")
    if chunk_size < 1:
        raise InputError(f"chunk_size must be >= 1, got {chunk_size!r}")
    n = coords.shape[0]
    index_dtype = np.int32 if n < np.iinfo(np.int32).max else np.int64
    rows_parts, cols_parts = [], []
    for rows in _section_rows(n, sections):
        points = coords[rows]
        tree = NearestNeighbors(radius=radius, algorithm="kd_tree").fit(points)
        for start in range(0, len(rows), chunk_size):
            chunk = tree.radius_neighbors_graph(points[start : start + chunk_size], radius, mode="connectivity")
            local_row = np.repeat(np.arange(start, start + chunk.shape[0]), np.diff(chunk.indptr))
            local_col = chunk.indices
            keep = local_row != local_col  # no self-loops
            rows_parts.append(rows[local_row[keep]].astype(index_dtype))
            cols_parts.append(rows[local_col[keep]].astype(index_dtype))
    row = np.concatenate(rows_parts) if rows_parts else np.empty(0, index_dtype)
    col = np.concatenate(cols_parts) if cols_parts else np.empty(0, index_dtype)
    graph = sp.csr_matrix((np.ones(row.size, dtype=np.float32), (row, col)), shape=(n, n))
    graph.sort_indices()
    return graph


def k_hop_reach(adjacency: sp.spmatrix, k: int, *, rows=None, chunk_size: int = CHUNK_CELLS) -> sp.csr_matrix:
    """Boolean CSR: entry (i, j) when j is within ``k`` hops of i (i itself included, hop 0).

    ``rows``: only these cells' rows (in that order), e.g. the centres of a batch of ego-nets.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise InputError(f"k_hop must be an integer >= 0, got {k!r}")
    adjacency = sp.csr_matrix(adjacency, dtype=bool)
    n = adjacency.shape[0]
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=int)
    step = (adjacency + sp.identity(n, dtype=bool, format="csr")).tocsr()
    parts = []
    for start in range(0, len(rows), chunk_size):
        chunk = rows[start : start + chunk_size]
        reach = sp.csr_matrix((np.ones(len(chunk), dtype=bool), (np.arange(len(chunk)), chunk)), shape=(len(chunk), n))
        for _ in range(int(k)):
            reach = (reach @ step).astype(bool)
        parts.append(reach.tocsr())
    out = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, n), dtype=bool)
    out.sort_indices()
    return out


def iter_ego_nets(adjacency: sp.spmatrix, k: int, centers=None, *, chunk_size: int = 4096):
    """Yield ``(center, nodes, sub_adjacency)`` for every centre (all cells by default): SpatialSSL's ego-net dataset.

    ``nodes`` starts with the centre, then the other cells within ``k`` hops in
    ascending order; ``sub_adjacency`` is the induced adjacency. Reach is
    computed for ``chunk_size`` centres at a time.
    """
    adjacency = sp.csr_matrix(adjacency)
    centers = np.arange(adjacency.shape[0]) if centers is None else np.asarray(centers, dtype=int)
    for start in range(0, len(centers), chunk_size):
        batch = centers[start : start + chunk_size]
        reach = k_hop_reach(adjacency, k, rows=batch, chunk_size=chunk_size)
        for i, center in enumerate(batch):
            others = reach.indices[reach.indptr[i] : reach.indptr[i + 1]]
            nodes = np.concatenate([[center], others[others != center]]).astype(int)
            yield int(center), nodes, adjacency[nodes][:, nodes].tocsr()


def ego_net(adjacency: sp.spmatrix, center: int, k: int) -> tuple[np.ndarray, sp.csr_matrix]:
    """Nodes within ``k`` hops of ``center`` (centre first, then ascending) and their induced adjacency."""
    adjacency = sp.csr_matrix(adjacency)
    # breadth-first from the centre only (one row of k_hop_reach without building all rows)
    frontier = np.array([center])
    seen = {int(center)}
    for _ in range(int(k)):
        nxt = np.unique(adjacency[frontier].indices)
        nxt = np.array([j for j in nxt if int(j) not in seen], dtype=int)
        if nxt.size == 0:
            break
        seen.update(int(j) for j in nxt)
        frontier = nxt
    others = np.array(sorted(seen - {int(center)}), dtype=int)
    nodes = np.concatenate([[int(center)], others]).astype(int)
    return nodes, adjacency[nodes][:, nodes].tocsr()


def hex_spacing(coords) -> float:
    """Median distance from each point to its nearest other point (a Visium grid's centre-to-centre spacing)."""
    coords = _check_coords(coords)
    dist, _ = NearestNeighbors(n_neighbors=2).fit(coords).kneighbors(coords)
    return float(np.median(dist[:, 1]))
