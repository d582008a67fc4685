"""The reference's own k-NN graph from shards (cellquery.index.graph) against brute-force k-NN."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from cellquery.errors import InputError
from cellquery.index.graph import drop_self_hits, graph_matrix, reference_knn_graph
from cellquery.index.sharded import build_shard, search_shard, shard_rows


@pytest.mark.parametrize("n_shards", [1, 3, 7])
def test_merged_graph_equals_brute_force(n_shards):
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (230, 6)).astype(np.float32)
    k = 8
    parts, offsets = [], []
    for s in range(n_shards):
        index = build_shard(X, n_shards, s, "faiss", {"factory": "Flat"})
        parts.append(search_shard(index, X[:5], X, k))
        offsets.append(shard_rows(len(X), n_shards, s)[0])
    D, I = reference_knn_graph(parts, offsets, k)
    bd, bi = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    np.testing.assert_array_equal(I, bi[:, 1:])  # sklearn's first neighbour of each cell is itself
    np.testing.assert_allclose(D, bd[:, 1:], rtol=1e-4, atol=1e-4)
    G = graph_matrix(D, I)
    assert G.shape == (230, 230) and G.nnz == 230 * k and G.diagonal().sum() == 0
    np.testing.assert_allclose(G[3, bi[3, 1:]].toarray().ravel(), bd[3, 1:], rtol=1e-4, atol=1e-4)


def test_duplicates_keep_k_other_cells():
    X = np.zeros((6, 2), dtype=np.float32)  # all cells coincide
    index = build_shard(X, 1, 0, "faiss", {"factory": "Flat"})
    D, I = reference_knn_graph([search_shard(index, X[:1], X, 3)], [0], 3)
    assert (D == 0).all() and all(r not in I[r] and len(set(I[r])) == 3 for r in range(6))


def test_drop_self_hits_by_hand():
    I = np.array([[5, 1, 2], [3, 3, 4], [7, 8, 9]])
    D = np.array([[0.5, 0.0, 0.7], [0.0, 0.0, 0.2], [0.1, 0.2, 0.3]])
    D2, I2 = drop_self_hits(D, I, np.array([1, 3, 6]))
    # row 1's own hit in the middle; row 3 found twice (a duplicate id): the first goes; row 6 missed: the last goes
    assert I2.tolist() == [[5, 2], [3, 4], [7, 8]] and D2.tolist() == [[0.5, 0.7], [0.0, 0.2], [0.1, 0.2]]
    with pytest.raises(InputError, match="leave-self-out"):
        drop_self_hits(D[:, :1], I[:, :1], np.array([1, 3, 6]))

