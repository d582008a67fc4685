"""The fast calibration paths against the searches and formulas they replace.

``IvfGemmIndex.reference_search`` against ``search`` of the reference, the seeded list
scan and heap sort against brute force, local scales from the reference search or shared
hits against batched searches, compiled hit distances and own-type candidates against
numpy, the significance mask against P-values, and the conformal calibration of some rows, or from shared hits, against the full
calibration by search.
"""

import numpy as np
import pytest

from cellquery.errors import InputError
from cellquery.index import build_index
from cellquery.index.calibration import calibrate, local_scales, reference_hits
from cellquery.index.gemm_backend import knn_gemm
from cellquery.transfer import conformal
from cellquery.index.calibration import Calibration
from cellquery.transfer.acceptance import exact_distances, null_bound, p_values, significant
from cellquery.transfer.conformal import HeldOutFold, calibrate_held_out, in_sample_rows
from test_conformal import brute_calibration, brute_search, mixture
from test_index import brute_force, clustered
from test_ivf_gemm import same_up_to_ties


class Searched:
    """An index seen only through its ``search`` (no ``reference_search``)."""

    def __init__(self, index):
        self.search = index.search


def test_reference_search_equals_search_of_the_reference():
    X, _ = clustered(3000, 1, dim=16)
    for nprobe in (3, 40):  # some lists (approximate), every list (exact)
        idx = build_index("ivf_gemm", X, {"nlist": 40, "nprobe": nprobe, "query_block": 64, "ref_block": 256}, seed=2)
        D, I = idx.search(X, 25)
        Dr, Ir = idx.reference_search(25, query_block=64, ref_block=256, chunk=700)  # chunks cut lists
        np.testing.assert_array_equal(Ir, I)
        np.testing.assert_allclose(Dr, D, rtol=1e-5)  # rows sit in other GEMM blocks: float32 rounding differs
        assert (Ir[:, 0] == np.arange(len(X))).all()
    # exact when every list is scanned: the exact backend (the same float32 arithmetic) and brute force
    Dg, Ig = knn_gemm(X, [X], 25)
    np.testing.assert_array_equal(Ir, Ig)
    np.testing.assert_allclose(Dr, Dg, atol=1e-4)
    De, Ie = brute_force(X, X, 25)
    same_up_to_ties(Ir[:, 1:], Dr[:, 1:], Ie[:, 1:], De[:, 1:], tol=2e-3)  # self at 0 up to float32 cancellation
    # fewer lists than the index's own: the search of an index built to probe that many
    few = build_index("ivf_gemm", X, {"nlist": 40, "nprobe": 3, "query_block": 64, "ref_block": 256}, seed=2)
    np.testing.assert_array_equal(idx.reference_search(25, 3, query_block=64, ref_block=256)[1], few.search(X, 25)[1])


def test_seeded_scan_keeps_the_k_best_with_duplicates_and_short_lists():
    X, Q = clustered(2000, 200, dim=8, n_clusters=5)
    X[1500] = X[17]  # an exact duplicate: the smaller id first
    Q[0] = X[17]
    De, Ie = knn_gemm(Q, [X], 40)
    # one list scanned whole (nprobe = nlist) in blocks of every width around k
    for rb in (13, 40, 41, 160, 4096):
        D, I = build_index("ivf_gemm", X, {"nlist": 7, "nprobe": 7, "ref_block": rb}, seed=0).search(Q, 40)
        np.testing.assert_array_equal(I, Ie)
        np.testing.assert_allclose(D, De, atol=1e-4)
    assert list(I[0, :2]) == [17, 1500]


def test_local_scales_from_the_reference_search_equal_batched_searches():
    X, _ = clustered(3000, 1, dim=16)
    idx = build_index("ivf_gemm", X, {"nlist": 30, "nprobe": 4}, seed=1)
    fast = local_scales(idx, X, k=10)
    # the same hits; distances up to float32 rounding (the rows sit in other GEMM blocks)
    np.testing.assert_allclose(fast, local_scales(Searched(idx), X, k=10, batch_size=700), rtol=1e-5)
    # hits shared with the conformal calibration (more columns than k + 1): the same scales
    hits = reference_hits(idx, X, 65)
    np.testing.assert_array_equal(local_scales(None, X, k=10, hits=hits), fast)
    a, b = calibrate(idx, X, k=10, seed=3), calibrate(None, X, k=10, seed=3, hits=hits)
    np.testing.assert_array_equal(a.null, b.null)
    # every list scanned: the exact k-th other neighbour
    d = np.linalg.norm(X[:, None, :].astype(np.float64) - X[None], axis=2)
    np.fill_diagonal(d, np.inf)
    exact = local_scales(idx, X, k=10, nprobe=30)
    np.testing.assert_allclose(exact, np.sort(d, axis=1)[:, 9], rtol=1e-4)
    with pytest.raises(InputError, match="nprobe applies to the ivf_gemm backend only"):
        local_scales(build_index("faiss", X, {"factory": "Flat"}), X, k=10, nprobe=3)
    with pytest.raises(InputError, match="reference hits have shape"):
        local_scales(None, X, k=10, hits=(hits[0][:, :5], hits[1][:, :5]))


@pytest.mark.parametrize("n", [50, 30_000])  # one block, and row blocks on two threads
def test_exact_distances_equal_float64_numpy(n):
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(500, 7)).astype(np.float32)
    query = rng.normal(size=(n, 7))  # float64 queries, float32 reference
    idx = rng.integers(-1, len(ref), size=(n, 6))
    expected = np.where(idx >= 0, np.linalg.norm(ref[np.maximum(idx, 0)].astype(np.float64) - query[:, None], axis=2), np.inf)
    np.testing.assert_allclose(exact_distances(query, ref, idx), expected, rtol=1e-14)
    np.testing.assert_allclose(exact_distances(query, ref, idx, threads=1), expected, rtol=1e-14)
    # no reference rows: every hit is -1 and no row is read
    assert np.isinf(exact_distances(query, ref[:0], np.full((n, 3), -1))).all()


@pytest.mark.parametrize("n", [40, 9_000])  # one block, and row blocks on two threads
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_significant_equals_p_values_below_the_cutoff(n, dtype):
    rng = np.random.default_rng(2)
    n_ref, n_null = 300, 1000
    scale = rng.uniform(0.5, 2.0, n_ref).astype(np.float32)
    null = np.sort(np.round(rng.gamma(2.0, 1.0, n_null), 1))  # rounded: many equal null values
    indices = rng.integers(-1, n_ref, size=(n, 8))
    # distances that land exactly on null values after dividing by the scale, and random ones
    on_null = null[rng.integers(0, n_null, size=indices.shape)] * scale[np.maximum(indices, 0)]
    distances = np.where(rng.random(indices.shape) < 0.5, on_null, rng.gamma(2.0, 1.0, indices.shape)).astype(dtype)
    distances[0, :2] = np.inf
    cal = Calibration(scale=scale, null=null)
    # cut-offs between counts, exactly at counts j / N, below every count and above 1
    for cutoff in (0.05, 0.1, 0.123, 0.5, 1.0, 0.0, -1.0, 1.5):
        expected = p_values(distances, indices, cal) < cutoff
        got = significant(distances, indices, cal, cutoff)
        np.testing.assert_array_equal(got, expected)
        assert got.any() or cutoff <= 0.0
    np.testing.assert_array_equal(significant(distances, indices, cal, 0.05, threads=1), p_values(distances, indices, cal) < 0.05)
    assert [null_bound(1000, c) for c in (0.05, 0.0505, 0.0, 1.0, 2.0)] == [50, 51, 0, 1000, 1001]
    # an empty null: P-values are NaN (never below a cut-off) and 1 for missing hits
    with np.errstate(invalid="ignore"):
        empty = Calibration(scale=scale, null=np.zeros(0))
        for cutoff in (0.05, 1.5):
            np.testing.assert_array_equal(significant(distances, indices, empty, cutoff), p_values(distances, indices, empty) < cutoff)
    with pytest.raises(InputError, match="differ in shape"):
        significant(distances[:, :3], indices, cal, 0.05)


@pytest.mark.parametrize("n", [300, 25_000])
def test_own_type_candidates_equal_distances_then_first_k(n):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    codes, batches = rng.integers(0, 3, n), rng.integers(0, 2, n)
    leave_batch = rng.random(n) < 0.5
    rows = np.sort(rng.choice(n, size=n // 2, replace=False))
    ids = rng.integers(-1, n, size=(len(rows), 12))
    ids[:, 0] = rows  # the row itself is never its own candidate
    found, count = conformal._own_type_nearest(x, rows, ids, codes, batches, leave_batch, 4)
    safe = np.maximum(ids, 0)
    keep = (ids >= 0) & (ids != rows[:, None]) & (codes[safe] == codes[rows][:, None])
    keep &= ~leave_batch[rows][:, None] | (batches[safe] != batches[rows][:, None])
    expected, expected_count = conformal._first_k(exact_distances(x[rows], x, ids), keep, 4)
    np.testing.assert_array_equal(count, expected_count)
    np.testing.assert_allclose(found, expected, rtol=1e-14)


def test_conformal_from_shared_hits_and_some_rows_equal_the_full_calibration():
    rng = np.random.default_rng(3)
    x, labels, batches = mixture(rng, 400, n_types=4)
    batches[labels == "2"] = "0"  # one type in one batch: leave-one-out
    full = conformal.calibrate(x, labels, batches, search=brute_search(x), k=4, n_candidates=10)
    np.testing.assert_allclose(full.distances, brute_calibration(x, labels, batches, 4), rtol=1e-5)
    # the reference's own hits (e.g. shared with the local scales) in place of the search
    hits = brute_search(x)(x, 30)
    shared = conformal.calibrate(x, labels, batches, k=4, n_candidates=10, reference_hits=hits)
    np.testing.assert_array_equal(shared.distances, full.distances)
    np.testing.assert_array_equal(shared.pool_sizes, full.pool_sizes)
    # cells scored in another order (the index's list order): the same calibration, also of some rows
    order = build_index("ivf_gemm", x, {"nlist": 8}, seed=0).list_order()
    assert sorted(order) == list(range(len(x)))
    ordered = conformal.calibrate(x, labels, batches, k=4, n_candidates=10, reference_hits=hits, order=order)
    np.testing.assert_array_equal(ordered.distances, full.distances)
    some = conformal.calibrate(x, labels, batches, k=4, n_candidates=3, reference_hits=hits, order=order[::-1], rows=[5, 1, 300])
    np.testing.assert_array_equal(some.distances[[1, 5, 300]],
                                  conformal.calibrate(x, labels, batches, search=brute_search(x), k=4, n_candidates=3).distances[[1, 5, 300]])
    with pytest.raises(InputError, match="permutation"):
        conformal.calibrate(x, labels, batches, k=4, n_candidates=10, reference_hits=hits, order=np.zeros(len(x), np.int64))
    with pytest.raises(InputError, match="reference hits have shape"):
        conformal.calibrate(x, labels, batches, k=4, n_candidates=40, reference_hits=hits)
    with pytest.raises(InputError, match="needs a search function"):
        conformal.calibrate(x, labels, batches, k=4)
    # some rows: those rows as in the full calibration, the others inf, pool sizes all set
    rows = np.sort(rng.choice(len(x), size=150, replace=False))
    part = conformal.calibrate(x, labels, batches, search=brute_search(x), k=4, n_candidates=10, rows=rows)
    np.testing.assert_array_equal(part.distances[rows], full.distances[rows])
    assert np.isinf(np.delete(part.distances, rows, axis=0)).all()
    np.testing.assert_array_equal(part.pool_sizes, full.pool_sizes)


def test_held_out_calibration_of_the_in_sample_rows_only_equals_the_full_one():
    rng = np.random.default_rng(4)
    x, labels, batches = mixture(rng, 300, n_types=3)
    labels[:5] = "lonely"  # a type only in fold 0's held-out part: no training cells, keeps its in-sample rows
    folds_of = conformal.calibration_folds(labels, None, 3, seed=0)
    folds_of[:5] = 0
    folds = []
    for f in range(3):
        held_rows, train_rows = np.flatnonzero(folds_of == f), np.flatnonzero(folds_of != f)
        shift = rng.normal(size=x.shape[1]).astype(np.float32) * 0.1  # a "refitted embedding"
        folds.append(HeldOutFold(held_rows=held_rows, train_rows=train_rows, held=x[held_rows] + shift, train=x[train_rows] + shift))
    folds.append(HeldOutFold(held_rows=np.zeros(0, np.int64), train_rows=np.arange(300), held=np.zeros((0, 0), np.float32),
                             train=np.zeros((0, 0), np.float32)))
    keep = in_sample_rows(labels, folds)
    np.testing.assert_array_equal(keep, np.arange(5))  # every other row is held out once with training cells of its type
    full = calibrate_held_out(conformal.calibrate(x, labels, None, search=brute_search(x), k=3), folds, 3)
    fast = calibrate_held_out(conformal.calibrate(x, labels, None, search=brute_search(x), k=3, rows=keep), folds, 3)
    np.testing.assert_array_equal(fast.distances, full.distances)
    np.testing.assert_array_equal(fast.pool_sizes, full.pool_sizes)


def test_reference_search_fills_rows_whose_lists_are_short():
    X, _ = clustered(3000, 1, dim=8, n_clusters=10)
    X[:4] = X[:4] * 0.01 + 100.0  # four far cells: a list of their own, fewer than k rows
    idx = build_index("ivf_gemm", X, {"nlist": 20, "nprobe": 1}, seed=0)
    D, I = idx.search(X, 10)
    short = I[:, -1] < 0
    assert short[:4].all()
    Dr, Ir = idx.reference_search(10)
    assert (Ir >= 0).all() and np.isfinite(Dr).all()
    np.testing.assert_array_equal(Ir[~short], I[~short])
    # the short rows: their own list's cells first, then the nearest cells of the lists added
    assert (np.sort(Ir[:4, :4], axis=1) == np.arange(4)).all()
    # so their local scales are finite distances to other cells, not padding
    assert np.isfinite(local_scales(idx, X, k=5)).all()
