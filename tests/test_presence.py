"""Presence scores against brute-force numpy computations on tiny cases, and their AUROC."""

import numpy as np
import pytest
import scipy.sparse as sp

from cellquery.transfer.presence import (
    mapped_presence, presence_auroc, query_presence, reference_presence, scaled_presence, transfer_presence,
)


def brute_scaled(raw, low=1, high=99):
    raw = np.asarray(raw, float)
    lo, hi = np.percentile(raw, low), np.percentile(raw, high)
    clipped = np.array([min(max(x, lo), hi) for x in raw])
    return (clipped - clipped.min()) / (clipped.max() - clipped.min())


def test_scaled_presence_clips_then_min_max_scales():
    raw = np.array([0.0, 1.0, 2.0, 3.0, 100.0])
    # 1st percentile 0.04, 99th 96.12 (linear interpolation): 100 is clipped, then scaled to [0, 1]
    expected = (np.clip(raw, 0.04, 96.12) - 0.04) / (96.12 - 0.04)
    assert scaled_presence(raw) == pytest.approx(expected)
    assert scaled_presence(raw) == pytest.approx(brute_scaled(raw))
    assert scaled_presence(np.ones(4)).tolist() == [0.0] * 4


def test_reference_and_mapped_presence_by_hand():
    # 3 query x 4 reference; rows normalised: q0 -> r0, r1 (1/2 each), q1 -> r0 (1), q2 -> r1, r2 (1/4, 3/4); r3 unmapped
    M = sp.csr_matrix(np.array([[1.0, 1.0, 0, 0], [2.0, 0, 0, 0], [0, 1.0, 3.0, 0]]))
    column_sums = np.array([1.5, 0.75, 0.75, 0.0])
    presence = reference_presence(M)
    assert presence == pytest.approx(brute_scaled(column_sums))
    dense = np.array([[0.5, 0.5, 0, 0], [1.0, 0, 0, 0], [0, 0.25, 0.75, 0]])
    assert mapped_presence(M) == pytest.approx(dense @ presence)
    # a query cell without hits maps to 0
    assert mapped_presence(sp.csr_matrix((1, 4)), presence).tolist() == [0.0]


def test_transfer_presence_equals_dense_computation_for_each_voter():
    rng = np.random.default_rng(0)
    reference_labels = np.array(["A"] * 6 + ["B"] * 3 + ["C"])
    indices = np.array([[0, 1, 6], [2, 9, -1], [7, 8, 3], [4, 5, 0]])
    distances = rng.uniform(0.1, 2.0, indices.shape)
    mask = np.array([[True, True, False], [True, True, False], [True, True, True], [False, True, True]])
    frequency = {"A": 0.6, "B": 0.3, "C": 0.1}
    for voter in ("majority", "distance_weighted", "balanced", "kernel"):
        dense = np.zeros((4, 10))
        for q in range(4):
            counted = [j for j in range(3) if mask[q, j] and indices[q, j] >= 0]
            d = distances[q, counted]
            if voter == "majority":
                w = np.ones(len(counted))
            elif voter == "distance_weighted":
                w = 1 / (d + 1e-6)
            elif voter == "balanced":
                w = np.array([1 / frequency[reference_labels[indices[q, j]]] for j in counted])
            else:  # Gaussian kernel, bandwidth the last counted hit's distance
                w = np.exp(-(d**2) / (2 * d.max() ** 2))
            for j, weight in zip(counted, w / w.sum()):
                dense[q, indices[q, j]] += weight
        presence = brute_scaled(dense.sum(axis=0))
        assert transfer_presence(reference_labels, distances, indices, mask, voter) == pytest.approx(dense @ presence), voter


def test_query_presence_equals_brute_force_reverse_knn():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(12, 3))
    query = np.vstack([rng.normal(size=(8, 3)), rng.normal(loc=6.0, size=(3, 3))])  # 3 cells far from the reference
    k = 4
    D = np.linalg.norm(reference[:, None, :] - query[None, :, :], axis=2)
    reverse = np.zeros((12, 11))
    for r in range(12):
        nearest = np.argsort(D[r])[:k]
        sigma = D[r, nearest].max()
        w = np.exp(-D[r, nearest] ** 2 / (2 * sigma**2))
        reverse[r, nearest] = w / w.sum()
    expected = brute_scaled(reverse.sum(axis=0))
    got = query_presence(reference, query, k=k)
    assert got == pytest.approx(expected)
    assert got[8:].max() == 0.0  # no reference cell has the far cells among its 4 nearest query cells


def test_presence_auroc_by_hand():
    true = ["A", "A", "B", "X", "X"]
    assert presence_auroc(true, {"A", "B"}, [0.9, 0.8, 0.7, 0.1, 0.2]) == 1.0
    # positives 0.9, 0.3, 0.7 against negatives 0.1, 0.95: each beats 0.1 and loses to 0.95 -> 3 of 6 pairs
    assert presence_auroc(true, {"A", "B"}, [0.9, 0.3, 0.7, 0.1, 0.95]) == pytest.approx(3 / 6)
    assert np.isnan(presence_auroc(["A", "B"], {"A", "B"}, [0.1, 0.2]))
