"""Tests of cellquery.index: backends against brute-force numpy neighbours, save/load,
sharded search + merge_topk, input errors."""

from __future__ import annotations

import os

import faiss
import numpy as np
import pytest

from cellquery.errors import InputError
from cellquery.index import BACKENDS, build_index, load_index, make_index, merge_topk, split_shards
from cellquery.index.faiss_backend import auto_nlist


@pytest.fixture(autouse=True, scope="module")
def _one_faiss_thread():
    # Speed only: OpenMP spin-waiting makes small faiss trainings slow on busy 2-core
    # machines. Results do not depend on the thread count.
    old = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(old)


def brute_force(X: np.ndarray, Q: np.ndarray, k: int, block: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN in float64 numpy from coordinate differences, ties by smaller id (the tests' reference).

    Also used by tests/test_bench.py. Queries go in blocks of ``block`` rows (memory).
    """
    X64, Q64 = X.astype(np.float64), Q.astype(np.float64)
    D, I = np.empty((len(Q), k)), np.empty((len(Q), k), dtype=np.int64)
    ids = np.arange(len(X))
    for start in range(0, len(Q), block):
        d2 = ((Q64[start : start + block, None, :] - X64[None, :, :]) ** 2).sum(-1)
        order = np.lexsort((np.broadcast_to(ids, d2.shape), d2), axis=1)[:, :k]
        D[start : start + block] = np.sqrt(np.take_along_axis(d2, order, axis=1))
        I[start : start + block] = order
    return D, I


def clustered(n: int, n_q: int, dim: int = 32, n_clusters: int = 30, seed: int = 1):
    """Gaussian mixture: cluster centres N(0, 4^2), unit within-cluster spread."""
    rng = np.random.default_rng(seed)
    C = rng.normal(scale=4.0, size=(n_clusters, dim))
    X = C[rng.integers(0, n_clusters, n)] + rng.normal(size=(n, dim))
    Q = C[rng.integers(0, n_clusters, n_q)] + rng.normal(size=(n_q, dim))
    return X.astype(np.float32), Q.astype(np.float32)


def recall(I: np.ndarray, I_true: np.ndarray) -> float:
    k = I_true.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(I, I_true)]))


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 16)).astype(np.float32)
    Q = rng.normal(size=(200, 16)).astype(np.float32)
    return X, Q


def test_flat_equals_brute_force(random_data):
    X, Q = random_data
    D_ref, I_ref = brute_force(X, Q, 10)
    # float64 input and a Fortran-ordered copy are converted to float32 C order
    idx = build_index("faiss", np.asfortranarray(X.astype(np.float64)), {"factory": "Flat"})
    D, I = idx.search(Q, 10)
    assert idx.n == 3000 and idx.dim == 16
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == (200, 10)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, rtol=1e-4)
    assert (np.diff(D, axis=1) >= 0).all()


def test_batches_give_same_result(random_data):
    X, Q = random_data
    idx = build_index("faiss", X)
    D1, I1 = idx.search(Q, 7, batch_size=10000)
    D2, I2 = idx.search(Q, 7, batch_size=13)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_allclose(D1, D2, rtol=1e-6)


def test_fewer_than_k_results_padded():
    X = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    idx = build_index("faiss", X)
    D, I = idx.search(np.zeros((1, 2), np.float32), 5)
    np.testing.assert_array_equal(I, [[0, 2, 1, -1, -1]])
    np.testing.assert_allclose(D[0, :3], [0.0, 1.0, 5.0], atol=1e-6)  # Euclidean, not squared
    assert np.isinf(D[0, 3:]).all()


def test_ivf_flat_full_probe_is_exact(random_data):
    X, Q = random_data
    D_ref, I_ref = brute_force(X, Q, 10)
    idx = build_index("faiss", X, {"factory": "IVF{nlist},Flat", "nlist": 16, "nprobe": 16})
    assert idx.factory == "IVF16,Flat"
    D, I = idx.search(Q, 10)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, rtol=1e-4)
    # nprobe really reaches faiss: one list of 16 on uniform-ish data misses neighbours
    idx1 = build_index("faiss", X, {"factory": "IVF{nlist},Flat", "nlist": 16, "nprobe": 1})
    assert recall(idx1.search(Q, 10)[1], I_ref) < 0.9


def test_auto_nlist():
    assert auto_nlist(20000, 20000) == 512  # 4*sqrt(20000)=566 capped at 20000 // 39
    assert auto_nlist(10**6, 10**6) == 4000  # 4*sqrt(1e6)
    assert auto_nlist(10**6, 65536) == 1680  # chunked build: sample of 65536 rows
    assert auto_nlist(30, 30) == 1
    X = np.random.default_rng(2).normal(size=(2000, 8)).astype(np.float32)
    idx = build_index("faiss", X, {"factory": "IVF{nlist},Flat"})
    assert idx.params["nlist"] == 51 and idx.factory == "IVF51,Flat"  # 2000 // 39


@pytest.fixture(scope="module")
def pq_case():
    X, Q = clustered(20000, 300)
    _, I_ref = brute_force(X, Q, 10)
    # max_train 4000 keeps the test fast (faiss warns below 39*256 PQ training points)
    params = {"factory": "IVF{nlist},PQ16", "nlist": 32, "nprobe": 8, "max_train": 4000}
    return X, Q, I_ref, params, build_index("faiss", X, params, seed=0)


def test_ivf_pq_recall_and_size(pq_case, tmp_path):
    X, Q, I_ref, params, idx = pq_case
    D, I = idx.search(Q, 10)
    # PQ16 on 32-d data: 2 dims per sub-quantiser, 256 centroids each; codes keep the
    # within-cluster geometry coarsely, so most true neighbours survive. Seen ~0.80; a
    # broken index (wrong ids, unapplied nprobe, lost offsets) scores near 10/667 = 0.015.
    assert recall(I, I_ref) > 0.6
    path = tmp_path / "pq.cqindex"
    idx.save(path)
    per_cell = os.path.getsize(path) / X.shape[0]
    # 16 code bytes + 8 bytes of int64 id per cell in the inverted lists = 24; overhead
    # (PQ codebooks 16*256*2*4 B = 32 KiB, 32 coarse centroids, header) adds ~1.8 B/cell
    # at n = 20k. Flat would take 128 B/cell.
    assert 24 <= per_cell < 28, per_cell


def test_ivf_pq_refine_is_near_exact(pq_case):
    X, Q, I_ref, params, _ = pq_case
    idx = build_index("faiss", X, {**params, "refine": True, "k_factor": 8})
    D, I = idx.search(Q, 10)
    assert recall(I, I_ref) > 0.95
    # re-ranked distances are exact Euclidean distances to the returned rows
    exact = np.linalg.norm(X[I].astype(np.float64) - Q[:, None, :], axis=2)
    np.testing.assert_allclose(D, exact, rtol=1e-4, atol=1e-4)


def test_deterministic_with_seed(pq_case):
    X, Q, _, params, idx = pq_case
    D1, I1 = idx.search(Q, 10)
    D2, I2 = build_index("faiss", X, params, seed=0).search(Q, 10)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)


@pytest.mark.parametrize(
    "params",
    [
        {"factory": "Flat"},
        {"factory": "IVF{nlist},Flat", "nlist": 8, "nprobe": 3},
        {"factory": "IVF{nlist},PQ8", "nlist": 8, "nprobe": 2, "refine": True},
        {"factory": "HNSW16", "efSearch": 20},
    ],
)
def test_save_load_round_trip(random_data, params, tmp_path):
    X, Q = random_data
    idx = build_index("faiss", X, params, seed=3)
    D1, I1 = idx.search(Q, 10)
    path = tmp_path / "idx.cqindex"
    idx.save(path)
    idx2 = load_index(path)
    assert (idx2.backend, idx2.n, idx2.dim, idx2.seed) == ("faiss", idx.n, idx.dim, 3)
    assert idx2.params == idx.params
    D2, I2 = idx2.search(Q, 10)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)


def test_chunked_build_equals_one_go(random_data):
    X, Q = random_data
    params = {"factory": "IVF{nlist},Flat", "nlist": 8, "nprobe": 2}
    one = build_index("faiss", X, params)
    chunked = make_index("faiss", X.shape[1], params)
    chunked.train(X)
    for start in range(0, len(X), 700):
        chunked.add(X[start : start + 700])
    assert chunked.n == len(X)
    np.testing.assert_array_equal(one.search(Q, 10)[1], chunked.search(Q, 10)[1])


def test_sharded_flat_merge_equals_single(random_data):
    X, Q = random_data
    D_all, I_all = build_index("faiss", X).search(Q, 12)
    shards = split_shards(len(X), 3)
    assert shards == [(0, 1000), (1000, 2000), (2000, 3000)]
    parts = [build_index("faiss", X[a:b]).search(Q, 12) for a, b in shards]
    D, I = merge_topk(parts, [a for a, _ in shards], 12)
    np.testing.assert_array_equal(I, I_all)
    np.testing.assert_allclose(D, D_all, rtol=1e-6)


def test_split_shards():
    assert split_shards(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert split_shards(5, 5) == [(i, i + 1) for i in range(5)]
    with pytest.raises(InputError, match="n_shards=4 exceeds n=3"):
        split_shards(3, 4)
    with pytest.raises(InputError, match="n_shards"):
        split_shards(3, 0)
    # every n, S: contiguous ranges covering 0..n-1, sizes n // S or one more, larger first
    for n in range(1, 60):
        for n_shards in range(1, n + 1):
            bounds = split_shards(n, n_shards)
            assert len(bounds) == n_shards and bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [stop - start for start, stop in bounds]
            assert sizes == sorted(sizes, reverse=True) and set(sizes) <= {n // n_shards, n // n_shards + 1}


def test_merge_topk_hand_made():
    inf = np.inf
    # shard A (offset 0): 2 results then padding; shard B (offset 10): 3 results
    A = (np.array([[0.5, 2.0, inf], [1.0, inf, inf]]), np.array([[3, 1, -1], [0, -1, -1]]))
    B = (np.array([[1.0, 2.0, 4.0], [0.2, 0.3, 9.0]]), np.array([[2, 0, 1], [5, 6, 7]]))
    D, I = merge_topk([A, B], [0, 10], 4)
    # row 0: 0.5 (3), 1.0 (12), 2.0 tie between global 1 and 10 -> 1 first, then 10
    np.testing.assert_array_equal(I, [[3, 12, 1, 10], [15, 16, 0, 17]])
    np.testing.assert_allclose(D, [[0.5, 1.0, 2.0, 2.0], [0.2, 0.3, 1.0, 9.0]])
    # k larger than all real results: -1 / inf last, padded to k
    D, I = merge_topk([A, B], [0, 10], 7)
    np.testing.assert_array_equal(I[1], [15, 16, 0, 17, -1, -1, -1])
    assert np.isinf(D[1, 4:]).all()
    # a -1 id with a finite distance is still treated as missing
    D, I = merge_topk([(np.array([[0.1, 0.2]]), np.array([[-1, 4]]))], [100], 2)
    np.testing.assert_array_equal(I, [[104, -1]])
    np.testing.assert_allclose(D, [[0.2, inf]])
    with pytest.raises(InputError, match="2 shard results but 1 offsets"):
        merge_topk([A, B], [0], 3)


def test_input_errors(random_data, tmp_path):
    X, Q = random_data
    idx = build_index("faiss", X)
    Xbad = X.copy()
    Xbad[5, 3] = np.nan
    with pytest.raises(InputError, match="reference X contains NaN or inf values in 1 row"):
        build_index("faiss", Xbad)
    Qbad = Q.copy()
    Qbad[0, 0] = np.inf
    with pytest.raises(InputError, match="query Q contains NaN or inf"):
        idx.search(Qbad, 5)
    with pytest.raises(InputError, match="query Q has dimension 8, index has dimension 16"):
        idx.search(Q[:, :8], 5)
    with pytest.raises(InputError, match="k must be an integer >= 1"):
        idx.search(Q, 0)
    with pytest.raises(InputError, match="reference X is empty"):
        build_index("faiss", np.zeros((0, 16), np.float32))
    with pytest.raises(InputError, match=r"unknown backend 'annoy'; known: \[.*'faiss'"):
        build_index("annoy", X)
    with pytest.raises(InputError, match="bad faiss factory string 'IVF8,Bogus'"):
        build_index("faiss", X, {"factory": "IVF8,Bogus"})
    with pytest.raises(InputError, match="unknown params \\['nprob'\\]"):
        build_index("faiss", X, {"nprob": 4})
    with pytest.raises(InputError, match="'nprobe' needs an IVF factory"):
        build_index("faiss", X, {"factory": "Flat", "nprobe": 4})
    with pytest.raises(InputError, match="nlist=5000 exceeds the 3000 training rows"):
        build_index("faiss", X, {"factory": "IVF{nlist},Flat", "nlist": 5000})
    bogus = tmp_path / "x.cqindex"
    bogus.write_bytes(b"not an index")
    with pytest.raises(InputError, match="not a cellquery index file"):
        load_index(bogus)


def test_registry():
    assert BACKENDS["faiss"].backend == "faiss"
    for name, cls in BACKENDS.items():
        assert cls.backend == name


@pytest.fixture(scope="module")
def small_clustered():
    X, Q = clustered(3000, 200)
    return X, Q, brute_force(X, Q, 10)


# pynndescent's numba compilation takes ~1 min on a 2-core machine: run it on request.
_graph_backends = [
    ("hnswlib", {"M": 16, "ef_construction": 100, "ef": 50}),
    pytest.param(
        "pynndescent",
        {"n_neighbors": 15},
        marks=pytest.mark.skipif(
            not os.environ.get("CELLQUERY_SLOW_TESTS"),
            reason="numba compilation is slow; set CELLQUERY_SLOW_TESTS=1",
        ),
    ),
]


@pytest.mark.parametrize("backend,params", _graph_backends)
def test_graph_backends(small_clustered, backend, params, tmp_path):
    X, Q, (D_ref, I_ref) = small_clustered
    idx = build_index(backend, X, params, seed=0)
    D, I = idx.search(Q, 10, batch_size=64)
    # Graph search on well-separated clusters of 100 points each finds nearly all true
    # neighbours; seen 0.99-1.0.
    assert recall(I, I_ref) > 0.9
    # distances are Euclidean (not squared) distances to the returned rows, ascending
    exact = np.linalg.norm(X[I].astype(np.float64) - Q[:, None, :], axis=2)
    np.testing.assert_allclose(D, exact, rtol=1e-4, atol=1e-4)
    assert (np.diff(D, axis=1) >= 0).all()
    # same seed -> same result; save/load round trip
    D2, I2 = build_index(backend, X, params, seed=0).search(Q, 10)
    np.testing.assert_array_equal(I, I2)
    idx.save(tmp_path / "g.cqindex")
    idx3 = load_index(tmp_path / "g.cqindex")
    assert idx3.backend == backend and idx3.params == idx.params
    D3, I3 = idx3.search(Q, 10)
    np.testing.assert_array_equal(I, I3)
    np.testing.assert_array_equal(D, D3)
    # fewer rows than k: padded with -1 / inf
    D4, I4 = build_index(backend, X[:4], params).search(Q[:2], 6)
    np.testing.assert_array_equal(np.sort(I4[:, :4], axis=1), [[0, 1, 2, 3]] * 2)
    assert (I4[:, 4:] == -1).all() and np.isinf(D4[:, 4:]).all()


def test_hnswlib_chunked_add_grows(small_clustered):
    X, Q, (_, I_ref) = small_clustered
    idx = make_index("hnswlib", X.shape[1], {"n_total": 500}, seed=0)
    idx.train(X[:500])
    for start in range(0, len(X), 1000):
        idx.add(X[start : start + 1000])  # capacity 500 is exceeded and resized
    assert idx.n == len(X)
    assert recall(idx.search(Q, 10)[1], I_ref) > 0.9
