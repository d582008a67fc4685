"""The calibration's leaf search (cellquery.index.leaf_search) against brute force and the exact backend."""

import numpy as np
import pytest

from cellquery.errors import InputError
from cellquery.index import build_index
from cellquery.index.calibration import calibrate, local_scales, reference_hits, scales_from_hits
from cellquery.index.gemm_backend import knn_gemm
from cellquery.index.leaf_search import split_lists
from test_index import brute_force, clustered
from test_ivf_gemm import same_up_to_ties


def test_split_lists_leaves_stay_in_their_list_around_their_centroid():
    X, _ = clustered(3000, 1, dim=8, n_clusters=6)
    idx = build_index("ivf_gemm", X, {"nlist": 7}, seed=0)
    idx._group()
    Xg, offsets = idx._X, idx._offsets
    order, leaf_off, centroids = split_lists(Xg, offsets, 100, seed=4, threads=2)
    assert np.array_equal(np.sort(order), np.arange(len(Xg)))
    sizes = np.diff(offsets)
    assert len(leaf_off) - 1 <= int(np.sum(-(-sizes // 100))) and (np.diff(leaf_off) > 0).all()
    leaf = np.repeat(np.arange(len(leaf_off) - 1), np.diff(leaf_off))
    lst_of_pos = np.repeat(np.arange(len(sizes)), sizes)
    lst = lst_of_pos[order]
    for j in range(len(leaf_off) - 1):  # a leaf's rows come from one list, in ascending position
        part = order[leaf_off[j] : leaf_off[j + 1]]
        assert len(set(lst[leaf_off[j] : leaf_off[j + 1]])) == 1 and (np.diff(part) > 0).all()
    # after the last assignment every row is nearest its own leaf's centroid among its list's leaves
    d = ((Xg[order][:, None, :] - centroids[None]) ** 2).sum(axis=2)
    same_list = lst[:, None] == np.array([lst[leaf_off[j]] for j in range(len(leaf_off) - 1)])[None]
    d[~same_list] = np.inf
    assert (d[np.arange(len(order)), leaf] <= d.min(axis=1) + 1e-4).all()
    # the seed sets the initial centroids; one thread or two give the same leaves
    again = split_lists(Xg, offsets, 100, seed=4, threads=1)
    assert np.array_equal(again[0], order) and np.array_equal(again[1], leaf_off)
    other = split_lists(Xg, offsets, 100, seed=5)
    assert not (np.array_equal(other[0], order) and np.array_equal(other[1], leaf_off))


def test_leaf_search_of_every_leaf_is_exact():
    X, _ = clustered(2500, 1, dim=16)
    X[2000] = X[17]  # an exact duplicate: the smaller id first
    idx = build_index("ivf_gemm", X, {"nlist": 5}, seed=1)
    D, I = idx.leaf_reference_search(30, leaf_size=60, nprobe=10_000, candidates=10_000)
    Dg, Ig = knn_gemm(X, [X], 30)
    np.testing.assert_array_equal(I[:, 1:], Ig[:, 1:])  # self at distance 0 (float32 cancellation): first
    assert (I[:, 0] == np.arange(len(X))).sum() >= len(X) - 2 and set(I[17, :2]) == {17, 2000}
    np.testing.assert_allclose(D, Dg, atol=1e-4)
    De, Ie = brute_force(X, X, 30)
    same_up_to_ties(I[:, 1:], D[:, 1:], Ie[:, 1:], De[:, 1:], tol=2e-3)
    # the scales read without hits: the k-th other row, as from the exact hits
    d = np.linalg.norm(X[:, None, :].astype(np.float64) - X[None], axis=2)
    np.fill_diagonal(d, np.inf)
    scale = idx.leaf_local_scales(12, leaf_size=60, nprobe=10_000, candidates=10_000)
    np.testing.assert_allclose(scale, np.sort(d, axis=1)[:, 11], rtol=1e-4, atol=1e-5)


def test_leaf_search_of_some_leaves_returns_true_distances_and_no_closer_scales():
    X, _ = clustered(6000, 1, dim=16, n_clusters=8)
    idx = build_index("ivf_gemm", X, {"nlist": 8}, seed=0)
    D, I = idx.leaf_reference_search(40, leaf_size=64, nprobe=4, candidates=8)
    exact = np.linalg.norm(X[I].astype(np.float64) - X[:, None, :], axis=2)
    # every hit at its own distance (itself at 0 up to float32 cancellation of |x|^2 - 2 x.x + |x|^2)
    np.testing.assert_allclose(D[:, 1:], exact[:, 1:], atol=2e-3)
    assert (D[:, 0] < 0.02).all()
    assert (np.diff(D, axis=1) >= 0).all() and (I >= 0).all()
    assert all(len(set(row)) == 40 for row in I[:200])
    assert (I[:, 0] == np.arange(len(X))).mean() > 0.99
    De, Ie = brute_force(X, X, 40)
    found = np.mean([len(set(a) & set(b)) / 40 for a, b in zip(I, Ie)])
    assert 0.5 < found < 1  # approximate (seen 0.68), and more leaves find more (0.93)
    D8, I8 = idx.leaf_reference_search(40, leaf_size=64, nprobe=8, candidates=16)
    assert np.mean([len(set(a) & set(b)) / 40 for a, b in zip(I8, Ie)]) > found
    # the scales without hits equal those of the kept hits; never below the exact ones
    rows = np.arange(len(X))
    scale = idx.leaf_local_scales(20, leaf_size=64, nprobe=4, candidates=8)
    np.testing.assert_allclose(scale, scales_from_hits(D, I, rows, 20), rtol=1e-5, atol=1e-6)
    truth = scales_from_hits(De, Ie, rows, 20)
    assert (scale >= truth - 1e-4).all() and (scale > truth + 1e-4).any()


def test_leaf_search_fills_rows_whose_leaves_are_short():
    """Leaves of ~8 rows, 2 probed: fewer candidates than 60 hits; the row-by-row scan fills them (exact: every list)."""
    X, _ = clustered(400, 1, dim=4)
    idx = build_index("ivf_gemm", X, {"nlist": 4, "nprobe": 4}, seed=0)
    idx._group()
    order, leaf_off, _ = split_lists(idx._X, idx._offsets, 8)
    assert 2 * np.diff(leaf_off).max() < 51  # every row is short of candidates
    D, I = idx.leaf_reference_search(60, leaf_size=8, nprobe=2)
    Dg, Ig = knn_gemm(X, [X], 60)
    np.testing.assert_array_equal(I[:, 1:], Ig[:, 1:])
    np.testing.assert_allclose(D, Dg, atol=1e-4)
    scale = idx.leaf_local_scales(50, leaf_size=8, nprobe=2)
    np.testing.assert_allclose(scale, scales_from_hits(Dg, Ig, np.arange(len(X)), 50), rtol=1e-5, atol=1e-6)


def test_calibration_takes_the_leaf_search_for_ivf_gemm_only():
    X, _ = clustered(3000, 1, dim=16)
    idx = build_index("ivf_gemm", X, {"nlist": 10}, seed=0)
    leaves = {"leaf_size": 100, "nprobe": 6}
    scale = local_scales(idx, X, k=10, leaves=leaves)
    np.testing.assert_array_equal(scale, np.maximum(idx.leaf_local_scales(10, **leaves), scale.min()))
    hits = reference_hits(idx, X, 11, leaves=leaves)
    np.testing.assert_allclose(local_scales(None, X, k=10, hits=hits), scale, rtol=1e-5)
    a = calibrate(idx, X, k=10, seed=3, leaves=leaves)
    np.testing.assert_array_equal(a.scale, scale)
    with pytest.raises(InputError, match="leaf search needs the ivf_gemm backend"):
        local_scales(build_index("faiss", X, {"factory": "Flat"}), X, k=10, leaves={})
    with pytest.raises(InputError, match="leaf search needs the ivf_gemm backend"):
        reference_hits(idx, X, 11, nprobe=3, leaves={})
    with pytest.raises(InputError, match="leaf_size"):
        idx.leaf_local_scales(10, leaf_size=0)


def test_leaves_are_kept_until_rows_are_added():
    X, _ = clustered(3000, 1, dim=8)
    idx = build_index("ivf_gemm", X[:2000], {"nlist": 6}, seed=0)
    first = idx._split(100)
    assert idx._split(100)[0] is first[0]  # the calibration's two searches share one split
    assert len(idx._split(50)[2]) > len(first[2])  # another leaf size: split again
    idx.add(X[2000:])
    D, I = idx.leaf_reference_search(20, leaf_size=100, nprobe=10_000, candidates=10_000)  # the added rows are searched
    np.testing.assert_array_equal(I[:, 1:], knn_gemm(X, [X], 20)[1][:, 1:])
