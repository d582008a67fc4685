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
