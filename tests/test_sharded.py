"""Scatter/gather search: merged shards equal one exact index, calibration included."""

import numpy as np

from cellquery.index import build_index
from cellquery.index.sharded import build_shard, merge_shards, search_shard, shard_rows
from cellquery.index.calibration import local_scales, reference_self_distances


def test_merged_shards_equal_a_single_exact_index():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(900, 8)).astype(np.float32)  # continuous random data: no distance ties
    query = rng.normal(size=(200, 8)).astype(np.float32)
    k, n_shards = 7, 3
    parts = [
        search_shard(build_shard(reference, n_shards, s, "faiss", {"factory": "Flat"}), query, reference, k)
        for s in range(n_shards)
    ]
    offsets = [shard_rows(len(reference), n_shards, s)[0] for s in range(n_shards)]
    assert offsets == [0, 300, 600]
    distances, indices, self_distances, calibration = merge_shards(parts, offsets, reference, k=k, seed=0)

    single = build_index("faiss", reference, {"factory": "Flat"})
    d1, i1 = single.search(query, k)
    np.testing.assert_array_equal(indices, i1)
    np.testing.assert_allclose(distances, d1, rtol=1e-5)
    np.testing.assert_allclose(self_distances, reference_self_distances(single, reference, k=k, seed=0), rtol=1e-5)
    np.testing.assert_allclose(calibration.scale, local_scales(single, reference, k=k), rtol=1e-5)


def test_an_unsharded_ivf_gemm_index_searches_the_reference_in_leaves():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(3000, 8)).astype(np.float32)
    query = rng.normal(size=(100, 8)).astype(np.float32)
    k = 9
    exact = search_shard(build_index("faiss", reference, {"factory": "Flat"}), query, reference, k)
    every = {"nlist": 6, "nprobe": 6, "self_search": "leaves", "leaf_size": 100, "leaf_nprobe": 1000}
    hits = search_shard(build_shard(reference, 1, 0, "ivf_gemm", every), query, reference, k)
    np.testing.assert_array_equal(hits["reference_indices"][:, 1:], exact["reference_indices"][:, 1:])  # every leaf: exact
    few = {**every, "leaf_nprobe": 2}
    index = build_shard(reference, 1, 0, "ivf_gemm", few)
    hits = search_shard(index, query, reference, k)
    leaf_d, leaf_i = index.leaf_reference_search(k + 1, leaf_size=100, nprobe=2)
    np.testing.assert_array_equal(hits["reference_indices"], leaf_i)
    assert (hits["reference_indices"] != exact["reference_indices"]).any()  # two leaves: approximate
    np.testing.assert_array_equal(hits["indices"], index.search(query, k)[1])  # the queries as before
    # a shard of several: the reference is searched as queries
    shard = build_shard(reference, 2, 1, "ivf_gemm", few)
    np.testing.assert_array_equal(search_shard(shard, query, reference, k)["reference_indices"], shard.search(reference, k + 1)[1])
