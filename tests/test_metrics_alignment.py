"""Seurat alignment score (Cell BLAST Methods, "Benchmarking batch-effect correction")."""

import math

import numpy as np
import pytest

from cellquery.errors import InputError
from cellquery.metrics import seurat_alignment_score


def naive_score(X, b, k):
    """1 - (x̄ - k/N)/(k - k/N) with plain loops; X already subsampled."""
    n = len(X)
    n_batches = len(set(b))
    same_total = 0
    for i in range(n):
        d = sorted(
            (math.sqrt(sum((X[i][c] - X[j][c]) ** 2 for c in range(len(X[i])))), j) for j in range(n) if j != i
        )
        for a, c in zip(d[: k + 1], d[1 : k + 1]):
            assert c[0] - a[0] > 1e-9  # no ties near the k-NN boundary
        for _, j in d[:k]:
            if b[j] == b[i]:
                same_total += 1
    x_bar = same_total / n
    return 1 - (x_bar - k / n_batches) / (k - k / n_batches)


def test_hand_worked_interleaved():
    # A at 0, 2.1, 4.6; B at 1, 3.3, 6; 6 cells, k_frac 2/6 -> k = 2, N = 2, k/N = 1
    # same-batch counts among 2-NN: 0:[1B,2.1A]=1  2.1:[1B,3.3B]=0  4.6:[3.3B,6B]=0
    #                               1:[0A,2.1A]=0  3.3:[2.1A,4.6A]=0  6:[4.6A,3.3B]=1
    # x̄ = 2/6 -> score = 1 - (1/3 - 1)/(2 - 1) = 5/3 (above 1: neighbours prefer the other batch)
    X = np.array([[0.0], [2.1], [4.6], [1.0], [3.3], [6.0]])
    b = ["A", "A", "A", "B", "B", "B"]
    assert seurat_alignment_score(X, b, k_frac=2 / 6) == pytest.approx(5 / 3, abs=1e-12)


def test_hand_worked_separated_unequal_batches():
    # A: 3 cells near 0, B: 5 cells near 100 -> any subsample (3 + 3) is fully separated
    # k = max(1, round(0.01 * 6)) = 1, x̄ = 1 -> score = 1 - (1 - 1/2)/(1 - 1/2) = 0
    X = np.array([[0.0], [1.0], [2.5], [100.0], [101.0], [102.5], [104.0], [107.0]])
    b = ["A"] * 3 + ["B"] * 5
    for seed in range(3):
        assert seurat_alignment_score(X, b, seed=seed) == pytest.approx(0.0, abs=1e-12)


def test_equal_batches_vs_naive():
    # equal batch sizes: every subsample is the whole data set
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 4))
    b = np.repeat(["x", "y", "z"], 40)
    X[b == "x", 0] += 1.0
    k = round(0.05 * 120)
    assert abs(seurat_alignment_score(X, b, k_frac=0.05) - naive_score(X.tolist(), b.tolist(), k)) < 1e-9


def test_unequal_batches_vs_naive_documented_subsampling():
    # documented sampling: numpy default_rng(seed); batches in sorted order; each
    # draws min-size cells without replacement; repeated n_subsamples times.
    rng = np.random.default_rng(4)
    X = rng.normal(size=(90, 3))
    b = np.array(["q"] * 30 + ["p"] * 60)
    X[b == "q", 1] += 0.7
    expected = []
    r = np.random.default_rng(11)
    for _ in range(3):
        idx = []
        for batch in sorted(set(b.tolist())):
            members = [i for i in range(len(b)) if b[i] == batch]
            idx.extend(sorted(r.choice(members, size=30, replace=False).tolist()))
        expected.append(naive_score([X[i].tolist() for i in idx], [b[i] for i in idx], round(0.05 * 60)))
    got = seurat_alignment_score(X, b, k_frac=0.05, n_subsamples=3, seed=11)
    assert abs(got - sum(expected) / 3) < 1e-9
    assert got == seurat_alignment_score(X, b, k_frac=0.05, n_subsamples=3, seed=11)


def test_single_batch_is_error():
    with pytest.raises(InputError, match="at least 2 batches"):
        seurat_alignment_score(np.zeros((5, 2)), ["a"] * 5)


@pytest.mark.parametrize("kw", [{"k_frac": 0}, {"n_subsamples": 0}, {"n_subsamples": 1.5}])
def test_bad_params(kw):
    with pytest.raises(InputError):
        seurat_alignment_score(np.arange(8.0).reshape(4, 2), ["a", "a", "b", "b"], **kw)


def test_length_mismatch():
    with pytest.raises(InputError):
        seurat_alignment_score(np.zeros((4, 2)), ["a", "b"])
