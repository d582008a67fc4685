"""MAP and Seurat alignment above the size bound (cellquery.metrics.at_scale) against hand computations on the same subsample."""

import numpy as np
import pytest

from cellquery.metrics.at_scale import map_at_scale, seurat_alignment_at_scale, subsample_rows


def data(n=900, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(["a", "b", "c"], n)
    batches = rng.choice(["x", "y"], n, p=[0.6, 0.4])
    X = rng.normal(0, 1, (n, 5)) + (labels[:, None] == "a") * 2.0 + (batches[:, None] == "x") * 0.7
    return X.astype(np.float32), labels, batches


def brute_neighbours(X, k):
    D = ((X[:, None, :].astype(np.float64) - X[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    return np.argsort(D, axis=1, kind="stable")[:, :k]


def test_subsample_is_seeded_uniform_and_whole_below_the_bound():
    assert np.array_equal(subsample_rows(50, 100), np.arange(50))
    a, b = subsample_rows(1000, 300, seed=3), subsample_rows(1000, 300, seed=3)
    assert np.array_equal(a, b) and len(np.unique(a)) == 300 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, subsample_rows(1000, 300, seed=4))


def test_map_on_the_subsample_equals_hand_map():
    X, labels, _ = data()
    out = map_at_scale(X, labels, max_cells=400, seed=1)
    rows = subsample_rows(len(X), 400, seed=1)
    k = round(0.01 * 400)
    assert out["map_n_cells"] == 400 and out["map_k"] == k
    Xs, ys = X[rows], labels[rows]
    nb = brute_neighbours(Xs, k)
    aps = []
    for i in range(len(rows)):  # Cell BLAST Methods: AP over the K nearest, precision at each match
        match = ys[nb[i]] == ys[i]
        precision = np.cumsum(match) / np.arange(1, k + 1)
        aps.append((match * precision).sum() / match.sum() if match.any() else 0.0)
    assert out["map"] == pytest.approx(np.mean(aps), abs=1e-12)
    whole = map_at_scale(X, labels, max_cells=None)
    assert whole["map_n_cells"] == 900 and whole["map_k"] == 9


def test_seurat_alignment_on_the_subsample_equals_hand_score():
    X, _, batches = data()
    out = seurat_alignment_at_scale(X, batches, max_cells=500, seed=2)
    rows = subsample_rows(len(X), 500, seed=2)
    b = batches[rows]
    members = [np.flatnonzero(b == name) for name in ("x", "y")]
    size = min(len(m) for m in members)
    total = 2 * size
    k = max(1, round(0.01 * total))
    assert out["seurat_alignment_n_cells"] == total and out["seurat_alignment_k"] == k
    rng = np.random.default_rng(2)  # the score's own balanced draw, batches in sorted order
    sub = np.concatenate([np.sort(rng.choice(m, size=size, replace=False)) for m in members])
    nb = brute_neighbours(X[rows][sub], k)
    x_bar = (b[sub][nb] == b[sub][:, None]).sum() / total
    expected = k / 2
    assert out["seurat_alignment"] == pytest.approx(1 - (x_bar - expected) / (k - expected), abs=1e-12)
