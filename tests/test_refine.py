"""Exact re-ranking from vectors on disk (cellquery.index.refine) and the knn bench's disk_k_factor, against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from cellquery.bench.knn import run_benchmark
from cellquery.bench.scale import PRESETS
from cellquery.errors import InputError
from cellquery.index.refine import rerank


def brute(Q, X):
    return np.sqrt(np.maximum(((Q[:, None, :].astype(np.float64) - X[None, :, :]) ** 2).sum(-1), 0))


def test_rerank_from_a_memory_mapped_file_is_the_exact_order_of_the_candidates(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    X[7] = X[3]  # two rows at equal distance from every query: ordered by id
    Q = rng.normal(size=(40, 6)).astype(np.float32)
    np.save(tmp_path / "ref.npy", X)
    vectors = np.load(tmp_path / "ref.npy", mmap_mode="r")
    others = np.setdiff1d(np.arange(300), [3, 7])
    cand = np.stack([rng.permutation(others)[:20] for _ in range(len(Q))])
    cand[:, :2] = [7, 3]
    cand[5, 10:] = -1  # a row with 10 candidates only
    D, I = rerank(Q, vectors, cand, k=12)
    d = brute(Q, X)
    for r in range(len(Q)):
        c = cand[r][cand[r] >= 0]
        want = sorted(c.tolist(), key=lambda j: (d[r, j], j))[:12]
        assert I[r][I[r] >= 0].tolist() == want
        assert np.allclose(D[r][: len(want)], d[r, want], rtol=1e-6)
        if 7 in I[r]:  # the tie: the smaller id first (7 never kept without 3)
            assert I[r].tolist().index(3) + 1 == I[r].tolist().index(7)
    assert sum(7 in row for row in I) >= 5  # the tie is checked on several queries
    assert I[5, 10:].tolist() == [-1, -1] and np.isinf(D[5, 10:]).all()
    # every row a candidate: the exact k nearest
    D_all, I_all = rerank(Q, vectors, np.tile(np.arange(300), (len(Q), 1)), k=5)
    assert np.array_equal(I_all, np.array([sorted(range(300), key=lambda j: (d[r, j], j))[:5] for r in range(len(Q))]))
    with pytest.raises(InputError, match="past the 300 vectors"):
        rerank(Q, vectors, np.full((len(Q), 3), 300), k=2)
    with pytest.raises(InputError, match="one row of candidates per query"):
        rerank(Q, vectors, cand[:3], k=2)


def test_bench_reranks_from_the_reference_it_wrote_to_disk(tmp_path):
    params = {"nlist": 16, "factory": "IVF{nlist},PQ4"}
    rows = run_benchmark("ivfpq16_2level", 2000, n_query=100, dim=8, k=10, threads=1, exact_queries=100, max_train=2000,
                         params=params, tmpdir=str(tmp_path),
                         search_sweep=[{"nprobe": 16}, {"nprobe": 16, "disk_k_factor": 200}])
    plain, disk = rows
    assert plain["disk_k_factor"] is None and plain["rerank_s"] is None
    # every list probed and all 2,000 rows re-ranked exactly: the exact neighbours
    assert disk["disk_k_factor"] == 200 and disk["recall_at_k"] == 1.0 and disk["label_accuracy_vs_exact"] == 1.0
    assert plain["recall_at_k"] < 1.0  # 4-byte codes alone are not exact
    assert 0 < disk["rerank_s"] <= disk["query_s"] and disk["store_s"] >= 0
    assert disk["bytes_per_cell"] == plain["bytes_per_cell"] < 4 * 8  # the file on disk is not the index's
    assert list(tmp_path.iterdir()) == []  # the reference file is gone with the run
    with pytest.raises(InputError, match="disk_k_factor"):
        run_benchmark("ivfpq16_2level", 2000, n_query=10, dim=8, k=5, threads=1, params=params, max_train=2000,
                      search_sweep=[{"disk_k_factor": 0.5}])


def test_atlas_presets_differ_by_their_code_bytes_and_rerank_exactly(tmp_path):
    """ivfpq8_2level stores 8 bytes per cell fewer than ivfpq16_2level; with every row re-ranked from disk both are exact."""
    rows = {}
    for preset in ("ivfpq8_2level", "ivfpq16_2level"):
        rows[preset] = run_benchmark(preset, 3000, n_query=50, dim=16, k=5, threads=1, exact_queries=50, max_train=3000,
                                     params={"nlist": 8}, tmpdir=str(tmp_path),
                                     search_sweep=[{"nprobe": 8, "disk_k_factor": 600}])[0]
        assert rows[preset]["recall_at_k"] == 1.0
    assert PRESETS["ivfpq8_2level"][1]["coarse"] == "two_level"
    # codes of 8 and 16 bytes; the same ids, lists and centroids, and PQ codebooks of 256 x dim floats in both
    gap = rows["ivfpq16_2level"]["index_bytes"] - rows["ivfpq8_2level"]["index_bytes"]
    # (and the factory string in the file's header, one character longer)
    factories = [PRESETS[p][1]["factory"] for p in ("ivfpq16_2level", "ivfpq8_2level")]
    assert gap == 8 * 3000 + len(factories[0]) - len(factories[1])
