"""MAP (Cell BLAST Methods, "Benchmarking dimension reduction") against naive loops and hand-worked cases."""

import math

import numpy as np
import pytest

from cellquery.errors import InputError
from cellquery.metrics import map_from_embedding, mean_average_precision


def naive_ap(y, neighbours):
    hits = 0
    total = 0.0
    for k, yk in enumerate(neighbours, start=1):
        if yk == y:
            hits += 1
            total += hits / k
    return total / hits if hits else 0.0


def naive_map(true, nbr):
    return sum(naive_ap(true[i], list(nbr[i])) for i in range(len(true))) / len(true)


def naive_neighbours(X, k):
    out = []
    for i in range(len(X)):
        d = []
        for j in range(len(X)):
            if j != i:
                d.append((math.sqrt(sum((X[i][c] - X[j][c]) ** 2 for c in range(len(X[i])))), j))
        d.sort()
        # ties avoided: the K nearest and the next one are clearly separated
        for a, b in zip(d[: k + 1], d[1 : k + 1]):
            assert b[0] - a[0] > 1e-9
        out.append([j for _, j in d[:k]])
    return out


def test_map_hand_worked():
    # cell 1: y=a, nbrs a,b,a -> precision@1 = 1, @3 = 2/3 -> AP = (1 + 2/3)/2 = 5/6
    # cell 2: y=b, nbrs a,a,a -> no match -> AP = 0
    # cell 3: y=a, nbrs b,a,b -> precision@2 = 1/2 -> AP = 1/2
    true = ["a", "b", "a"]
    nbr = [["a", "b", "a"], ["a", "a", "a"], ["b", "a", "b"]]
    assert mean_average_precision(true, nbr) == pytest.approx((5 / 6 + 0 + 0.5) / 3, abs=1e-12)


def test_map_k1_is_nn_accuracy():
    assert mean_average_precision(["a", "b", "c", "a"], [["a"], ["a"], ["c"], ["b"]]) == 0.5


def test_map_random_vs_naive():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 4, 200)
    nbr = rng.integers(0, 4, (200, 7))
    assert abs(mean_average_precision(true, nbr) - naive_map(true.tolist(), nbr.tolist())) < 1e-9


def test_map_from_embedding_hand_worked():
    # 1-D points 0,1,3,7,15 with labels a,a,b,b,a; k_frac 0.4 -> K = 2 (all distances distinct)
    # 0(a): nbrs 1(a),3(b) -> AP 1     1(a): 0(a),3(b) -> AP 1      3(b): 1(a),0(a) -> 0
    # 7(b): 3(b),1(a) -> AP 1          15(a): 7(b),3(b) -> 0        MAP = 3/5
    X = np.array([[0.0], [1.0], [3.0], [7.0], [15.0]])
    assert map_from_embedding(X, list("aabba"), k_frac=0.4) == pytest.approx(0.6, abs=1e-12)


def test_map_from_embedding_random_vs_naive():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(150, 5))
    labels = rng.choice(["t1", "t2", "t3", "t4"], 150)
    X[:, 0] += (labels == "t1") * 1.5
    k = round(0.05 * 150)
    nb = naive_neighbours(X.tolist(), k)
    expected = naive_map(labels.tolist(), [[labels[j] for j in row] for row in nb])
    assert abs(map_from_embedding(X, labels, k_frac=0.05) - expected) < 1e-9


def test_map_from_embedding_k_at_least_one():
    # n=3, k_frac 0.01 -> round(0.03) = 0 -> K = 1: nearest-neighbour accuracy
    # 0(a): nn 1(a) ok; 1(a): nn 0(a) ok; 10(b): nn 1(a) wrong -> 2/3
    X = np.array([[0.0], [1.0], [10.0]])
    assert map_from_embedding(X, ["a", "a", "b"]) == pytest.approx(2 / 3, abs=1e-12)


@pytest.mark.parametrize(
    "X,labels,kw",
    [
        (np.zeros((3, 2)), ["a", "b"], {}),
        (np.array([[0.0], [np.nan]]), ["a", "b"], {}),
        (np.zeros((3, 2)), ["a", None, "b"], {}),
        (np.zeros((3, 2)), ["a", "b", "b"], {"k_frac": 1.5}),
        (np.zeros((1, 2)), ["a"], {}),
    ],
)
def test_map_from_embedding_bad_input(X, labels, kw):
    with pytest.raises(InputError):
        map_from_embedding(X, labels, **kw)


def test_map_bad_shapes():
    with pytest.raises(InputError):
        mean_average_precision(["a", "b"], [["a"]])
    with pytest.raises(InputError):
        mean_average_precision(["a"], ["a"])
