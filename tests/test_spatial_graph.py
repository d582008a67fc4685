"""Spatial graphs against brute-force pairwise distances and breadth-first search; the Visium hex grid."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.distance import cdist

from cellquery.errors import InputError
from cellquery.spatial.graph import ego_net, hex_spacing, iter_ego_nets, k_hop_reach, radius_graph

from test_spatial_data import SEURAT_VISIUM, needs_seurat_visium


def _brute_radius(coords, radius, sections):
    dist = cdist(coords, coords)
    same = sections[:, None] == sections[None, :]
    adj = (dist <= radius) & same
    np.fill_diagonal(adj, False)
    return adj


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_radius_graph_matches_brute_force(chunk_size):
    rng = np.random.default_rng(3)
    coords = rng.uniform(0, 10, (150, 2))
    coords[5] = coords[4]  # two cells on one spot: an edge of length 0
    sections = rng.choice(["b", "a", "c"], 150)
    sections[5] = sections[4]
    graph = radius_graph(coords, 1.5, sections, chunk_size=chunk_size)
    expected = _brute_radius(coords, 1.5, sections)
    np.testing.assert_array_equal(graph.toarray() > 0, expected)
    assert graph[4, 5] == 1 and (graph != graph.T).nnz == 0 and graph.diagonal().sum() == 0
    assert expected.sum() > 150  # a non-trivial graph


def test_radius_graph_one_section_and_bad_input():
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [2.5, 0.0]])
    np.testing.assert_array_equal(radius_graph(coords, 1.0).toarray(), [[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    with pytest.raises(InputError, match="radius"):
        radius_graph(coords, 0.0)
    with pytest.raises(InputError, match="coordinates"):
        radius_graph(np.array([[0.0, np.nan]]), 1.0)
    with pytest.raises(InputError, match="sections"):
        radius_graph(coords, 1.0, ["a"])


def _bfs_reach(adj: np.ndarray, k: int) -> np.ndarray:
    n = adj.shape[0]
    out = np.zeros((n, n), dtype=bool)
    for i in range(n):
        dist = {i: 0}
        queue = [i]
        while queue:
            u = queue.pop(0)
            if dist[u] == k:
                continue
            for v in np.flatnonzero(adj[u]):
                if v not in dist:
                    dist[v] = dist[u] + 1
                    queue.append(v)
        out[i, list(dist)] = True
    return out


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_k_hop_reach_and_ego_nets_match_bfs(k):
    rng = np.random.default_rng(k)
    coords = rng.uniform(0, 8, (80, 2))
    graph = radius_graph(coords, 1.2)
    expected = _bfs_reach(graph.toarray() > 0, k)
    np.testing.assert_array_equal(k_hop_reach(graph, k, chunk_size=9).toarray(), expected)
    np.testing.assert_array_equal(k_hop_reach(graph, k, rows=[5, 2], chunk_size=1).toarray(), expected[[5, 2]])
    for center in (0, 17, 79):
        nodes, sub = ego_net(graph, center, k)
        assert nodes[0] == center and sorted(nodes) == sorted(np.flatnonzero(expected[center]))
        np.testing.assert_array_equal(sub.toarray(), graph.toarray()[np.ix_(nodes, nodes)])
    nets = list(iter_ego_nets(graph, k, chunk_size=7))
    assert [c for c, _, _ in nets] == list(range(80))
    for center, nodes, sub in nets:
        bfs_nodes, bfs_sub = ego_net(graph, center, k)
        np.testing.assert_array_equal(nodes, bfs_nodes)
        assert (sub != bfs_sub).nnz == 0


@needs_seurat_visium
def test_visium_radius_graph_is_the_hexagonal_grid():
    from cellquery.data.spatial import read_visium

    adata = read_visium(SEURAT_VISIUM)
    coords = adata.obsm["spatial"]
    spacing = hex_spacing(coords)
    assert 130 < spacing < 145  # ~100 um between spot centres, in full-resolution pixels
    graph = radius_graph(coords, 1.2 * spacing, adata.obs["section"].to_numpy(), chunk_size=500)
    degree = np.diff(graph.indptr)
    # Expected from the array grid alone: hex neighbours are (row, col +- 2) and (row +- 1, col +- 1).
    where = {(r, c): i for i, (r, c) in enumerate(zip(adata.obs["array_row"], adata.obs["array_col"]))}
    offsets = [(0, 2), (0, -2), (1, 1), (1, -1), (-1, 1), (-1, -1)]
    expected = np.zeros((adata.n_obs, adata.n_obs), dtype=bool)
    for (r, c), i in where.items():
        for dr, dc in offsets:
            j = where.get((r + dr, c + dc))
            if j is not None:
                expected[i, j] = True
    np.testing.assert_array_equal(graph.toarray() > 0, expected)
    interior = expected.sum(axis=1) == 6
    assert interior.sum() > 2000 and np.all(degree[interior] == 6) and degree.max() == 6
    print(f"Visium radius graph: {graph.nnz} edges, {degree.mean():.2f} per spot, {interior.sum()} interior spots")


def test_graph_benchmark_measure_counts_edges():
    from cellquery.bench.spatial_graph import FIELDS, measure

    row = measure(3000, neighbours=10.0, k_hop=1, chunk_size=1000)
    assert tuple(row) == FIELDS
    rng = np.random.default_rng(0)  # the benchmark's section, rebuilt: edges by brute force
    coords = rng.uniform(0.0, np.sqrt(3000), (3000, 2))
    expected = _brute_radius(coords, np.sqrt(10.0 / np.pi), np.zeros(3000)).sum()
    assert row["edges"] == expected and row["k_hop_pairs_per_cell"] == pytest.approx(1 + expected / 3000, abs=1e-3)
    assert 8.5 < row["edges_per_cell"] < 10.0  # 10 per cell inside, fewer at the border
