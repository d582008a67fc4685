"""Voters on hand-made neighbour tables: weights, ties, all-rejected cells, balanced flips."""

import numpy as np
import pytest

from cellquery.transfer import transfer_continuous, transfer_labels
from cellquery.transfer.kernel import mapping_matrix
from cellquery.transfer.kernel import weights as kernel_weights


def table(rows):
    return (
        np.array([[d for _, d in r] for r in rows], dtype=np.float32),
        np.array([[i for i, _ in r] for r in rows], dtype=np.int64),
    )


def test_distance_weighted_outvotes_a_far_majority():
    ref = np.array(["A", "A", "B"])
    d, i = table([[(2, 0.1), (0, 1.0), (1, 1.0)]])  # B at 0.1 (vote 10), A A at 1.0 (votes 1 + 1)
    out = transfer_labels(ref, d, i, voter="distance_weighted")
    assert out.prediction[0] == "B"
    assert out.top_fraction[0] == pytest.approx((1 / 0.100001) / (1 / 0.100001 + 2 / 1.000001), rel=1e-6)
    assert transfer_labels(ref, d, i, voter="majority").prediction[0] == "A"


def test_tie_is_ambiguous_for_every_voter():
    ref = np.array(["A", "B", "A", "B"])
    d, i = table([[(0, 1.0), (1, 1.0), (2, 2.0), (3, 2.0)]])  # symmetric: A and B at equal distances
    for voter in ("majority", "distance_weighted", "kernel", "balanced"):
        assert transfer_labels(ref, d, i, voter=voter).prediction[0] == "ambiguous", voter


def test_all_hits_beyond_cutoff_is_rejected_for_every_voter():
    ref = np.array(["A", "A", "B"])
    d, i = table([[(0, 5.0), (1, 6.0), (2, 7.0)]])
    for voter in ("majority", "distance_weighted", "kernel", "balanced"):
        out = transfer_labels(ref, d, i, voter=voter, max_distance=1.0)
        assert out.prediction[0] == "rejected" and out.n_hits[0] == 0
        assert np.isnan(transfer_continuous(np.ones((3, 2)), d, i, voter=voter, max_distance=1.0)).all()


def test_balanced_voting_flips_exactly_when_frequencies_say_so():
    # reference: 90 cells of common type C, n_rare cells of rare type R
    # hits: 3 x C and 2 x R. Balanced votes: C 3/f_C, R 2/f_R; R wins iff 2/f_R > 3/f_C and, for the
    # 50 % rule, its share 2/f_R / (2/f_R + 3/f_C) > 0.5, i.e. iff f_R < 2/3 f_C <=> n_rare < 60.
    for n_rare, expected in [(10, "R"), (59, "R"), (60, "ambiguous"), (61, "C"), (90, "C")]:
        ref = np.array(["C"] * 90 + ["R"] * n_rare)
        d, i = table([[(0, 1.0), (1, 1.0), (2, 1.0), (90, 1.0), (91, 1.0)]])
        balanced = transfer_labels(ref, d, i, voter="balanced").prediction[0]
        assert balanced == expected, n_rare
        assert transfer_labels(ref, d, i, voter="majority").prediction[0] == "C"


def test_kernel_weights_by_hand():
    d = np.array([[1.0, 2.0, 9.0]])
    mask = np.array([[True, True, False]])
    w = kernel_weights(np.zeros((1, 3), int), mask, d, np.ones(1))
    # sigma = 2 (last significant hit): exp(-1/8), exp(-4/8), then normalised
    raw = np.array([np.exp(-1 / 8), np.exp(-4 / 8), 0.0])
    np.testing.assert_allclose(w[0], raw / raw.sum())


def test_mapping_matrix_transfers_values_and_embeddings():
    d, i = table([[(0, 1.0), (1, 2.0)], [(2, 1.0), (1, 1.0)]])
    w = kernel_weights(np.zeros((2, 2), int), np.ones((2, 2), bool), d, np.ones(1))
    M = mapping_matrix(i, w, 3).toarray()
    np.testing.assert_allclose(M.sum(axis=1), 1.0)
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    got = transfer_continuous(Y, d, i, voter="kernel")
    np.testing.assert_allclose(got, M @ Y)
    # row 2: equal distances, so equal weights
    np.testing.assert_allclose(got[1], (Y[2] + Y[1]) / 2)
