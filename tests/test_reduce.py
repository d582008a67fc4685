"""Data-driven meta cells (cellquery.index.reduce) against brute-force references."""

import numpy as np
import pytest

from cellquery.errors import InputError
from cellquery.index.reduce import (
    AMBIGUOUS,
    REJECTED,
    _occupied_boxes,
    distance_cutoff,
    geometric_sketch,
    grid_side,
    meta_vote,
    nearest,
    reduce_reference,
)


def blobs(sizes, seed=0, dim=4, spread=0.3):
    """Gaussian blobs of the given sizes, centres 10 apart on the first axis; labels 'A', 'B', ..."""
    rng = np.random.default_rng(seed)
    X, labels = [], []
    for i, n in enumerate(sizes):
        centre = np.zeros(dim)
        centre[0] = 10.0 * i
        X.append(centre + rng.normal(0, spread, (n, dim)))
        labels += [chr(65 + i)] * n
    return np.concatenate(X).astype(np.float32), np.array(labels)


def brute_nearest(X, V):
    d = ((X[:, None, :].astype(np.float64) - V[None, :, :]) ** 2).sum(-1)
    return d.argmin(axis=1), np.sqrt(d)


def test_kmeans_meta_cells_match_brute_force():
    X, labels = blobs([120, 60, 20])
    fates = np.random.default_rng(1).dirichlet([1, 1, 1], len(X))
    meta = reduce_reference(X, labels, method="kmeans", n=12, seed=0, fates=fates)
    assert meta.n <= 12
    # every cell belongs to its nearest meta cell (brute force over all pairs)
    own, _ = brute_nearest(X, meta.vectors)
    np.testing.assert_array_equal(meta.assignment, own)
    # label counts and fates are the members' (hand counts), sizes sum to the reference
    for j in range(meta.n):
        members = meta.assignment == j
        assert members.any()
        expected = [np.sum(labels[members] == name) for name in meta.labels]
        np.testing.assert_array_equal(meta.label_counts[j], expected)
        np.testing.assert_allclose(meta.fates[j], fates[members].mean(axis=0), rtol=1e-5)
    assert meta.sizes.sum() == len(X)
    np.testing.assert_allclose(meta.label_distribution.sum(axis=1), 1.0)
    # the same seed gives the same meta cells; labels never change them
    shuffled = np.random.default_rng(2).permutation(labels)
    again = reduce_reference(X, shuffled, method="kmeans", n=12, seed=0)
    np.testing.assert_array_equal(again.vectors, meta.vectors)
    np.testing.assert_array_equal(again.assignment, meta.assignment)
    # bytes: float32 vectors plus 8 bytes per non-zero (label, weight) entry plus float32 fates
    assert meta.nbytes() == meta.n * 4 * 4 + 8 * np.count_nonzero(meta.label_counts) + meta.n * 3 * 4


def test_grid_side_is_the_largest_edge_with_n_boxes():
    X, _ = blobs([50, 50, 50], dim=3, spread=1.0)
    side = grid_side(X, 40)
    assert _occupied_boxes(X, side).max() + 1 >= 40
    assert _occupied_boxes(X, side * 1.01).max() + 1 < 40


def test_sketch_keeps_a_rare_region_that_uniform_sampling_misses():
    X, labels = blobs([2000, 2000, 20], dim=2, spread=0.5)
    rows = geometric_sketch(X, 60, seed=0)
    assert len(rows) == 60 == len(np.unique(rows))
    np.testing.assert_array_equal(rows, geometric_sketch(X, 60, seed=0))
    # one cell per drawn box: no two sketched cells share a box of the grid
    boxes = _occupied_boxes(X, grid_side(X, 60))
    assert len(np.unique(boxes[rows])) == 60
    # the rare type (0.5 % of cells) keeps points: expected 0.3 of 60 under uniform sampling
    assert np.sum(labels[rows] == "C") >= 3
    meta = reduce_reference(X, labels, method="sketch", n=60, seed=0)
    np.testing.assert_array_equal(meta.vectors, X[rows])
    own, _ = brute_nearest(X, meta.vectors)
    np.testing.assert_array_equal(meta.assignment, own)


def test_meta_vote_matches_a_hand_computed_vote():
    X, labels = blobs([30, 30])
    meta = reduce_reference(X, labels, method="none", n=0)
    # three meta cells by hand: (A 3, B 1), (B 2), (A 1, B 1)
    meta.label_counts = np.array([[3, 1], [0, 2], [1, 1]])
    meta.vectors = meta.vectors[:3]
    meta.fates = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32)
    ids = np.array([[0, 2], [1, 2], [0, 1], [2, 0]])
    distances = np.array([[0.1, 0.2], [0.1, 0.2], [0.1, 0.2], [5.0, 6.0]])
    predictions, share, fates = meta_vote(distances, ids, meta, cutoff=1.0, min_hits=1, min_fraction=0.5)
    # cell 0: A 0.75 + 0.5, B 0.25 + 0.5 -> A 1.25/2; cell 1: B 1 + 0.5 -> B 1.5/2; cell 2: A 0.75, B 1.25 -> B 1.25/2
    np.testing.assert_allclose(share[:3], [0.625, 0.75, 0.625])
    assert list(predictions) == ["A", "B", "B", REJECTED]
    np.testing.assert_allclose(fates[0], [0.75, 0.25])
    assert np.isnan(fates[3]).all()
    tied, _, _ = meta_vote(distances[:1], np.array([[2, 2]]), meta, cutoff=1.0)
    assert list(tied) == [AMBIGUOUS]


def test_reduced_search_transfers_labels_and_rejects_an_unseen_type():
    X, labels = blobs([300, 300, 300], seed=3)
    Q, truth = blobs([50, 50, 50, 50], seed=4)  # D: a type the reference lacks
    for method in ("kmeans", "sketch"):
        meta = reduce_reference(X, labels, method=method, n=30, seed=0)
        cutoff = distance_cutoff(X, meta, k=3, quantile=0.99)
        # the cut-off is the quantile of the reference's own distances to its 3 nearest meta cells (brute force)
        _, d = brute_nearest(X, meta.vectors)
        assert cutoff == pytest.approx(np.quantile(np.sort(d, axis=1)[:, :3], 0.99), rel=1e-4)
        distances, ids = nearest(Q, meta.vectors, 3)
        predictions, _, _ = meta_vote(distances, ids, meta, cutoff=cutoff)
        known = truth != "D"
        assert (predictions[known] == truth[known]).mean() >= 0.95
        assert (predictions[~known] == REJECTED).all()


def test_bad_reduction_is_named():
    X, labels = blobs([10])
    with pytest.raises(InputError, match="unknown 'random'"):
        reduce_reference(X, labels, method="random", n=3)
    with pytest.raises(InputError, match=r"reduce.n = 11"):
        reduce_reference(X, labels, method="kmeans", n=11)


def test_hashed_boxes_are_the_grid_cells():
    """The box index of every cell partitions the cells exactly as the integer grid coordinates do (brute force)."""
    X, _ = blobs([400, 400], dim=5, spread=2.0)
    for side in (0.5, 1.0, 3.0):
        cells = np.floor((X.astype(np.float64) - X.min(axis=0)) / side).astype(np.int64)
        _, exact = np.unique(cells, axis=0, return_inverse=True)
        hashed = _occupied_boxes(X.astype(np.float64), side)
        # same partition: a one-to-one map between the two box numberings
        pairs = set(zip(exact.ravel().tolist(), hashed.tolist()))
        assert len(pairs) == len(set(exact.ravel().tolist())) == len(set(hashed.tolist()))
