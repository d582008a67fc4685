"""Jensen–Shannon divergence of cell-fate distributions (the Cell BLAST paper, Cao et al. 2020, Methods)."""

import math

import numpy as np
import pytest
from scipy.special import rel_entr

from cellquery.errors import InputError
from cellquery.metrics import jensen_shannon_divergence


def naive_jsd(p, q):
    sp, sq = sum(p), sum(q)
    p = [x / sp for x in p]
    q = [x / sq for x in q]
    total = 0.0
    for pi, qi in zip(p, q):
        m = (pi + qi) / 2
        if pi > 0:
            total += pi * math.log(pi / m)
        if qi > 0:
            total += qi * math.log(qi / m)
    return total / 2


def rel_entr_jsd(p, q):
    """The divergence written out with scipy.special.rel_entr, row by row."""
    P = p / p.sum(axis=-1, keepdims=True)
    Q = q / q.sum(axis=-1, keepdims=True)
    M = 0.5 * (P + Q)
    return 0.5 * (rel_entr(P, M).sum(axis=-1) + rel_entr(Q, M).sum(axis=-1))


def test_hand_worked():
    # disjoint supports: m = (.5, .5) -> ½(1·log 2 + 1·log 2) = log 2 (zeros contribute 0)
    # p=(.5,.5), q=(1,0): m=(.75,.25) -> ½(.5 log(.5/.75) + .5 log(.5/.25) + 1·log(1/.75))
    # identical rows -> 0; unnormalised (2, 0) is (1, 0)
    p = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8], [2.0, 0.0]])
    q = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.8], [0.0, 3.0]])
    want = [
        math.log(2),
        0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25) + math.log(1 / 0.75)),
        0.0,
        math.log(2),
    ]
    got = jensen_shannon_divergence(p, q)
    assert got.shape == (4,)
    assert np.allclose(got, want, atol=1e-12, rtol=0)


def test_random_vs_naive_with_zeros():
    rng = np.random.default_rng(6)
    p = rng.dirichlet(np.ones(7), 50)
    q = rng.dirichlet(np.ones(7), 50) * 3.0
    p[rng.random((50, 7)) < 0.3] = 0.0
    q[rng.random((50, 7)) < 0.3] = 0.0
    p[:, 0] += 0.01  # no all-zero rows
    q[:, 1] += 0.01
    got = jensen_shannon_divergence(p, q)
    for i in range(50):
        assert abs(got[i] - naive_jsd(p[i].tolist(), q[i].tolist())) < 1e-9
    assert (got >= 0).all() and (got <= math.log(2) + 1e-12).all()


def test_random_vs_rel_entr_formula():
    # scipy's Jensen–Shannon distance, squared, agrees with the divergence to rounding
    rng = np.random.default_rng(11)
    for m in (2, 3, 7, 20):
        p = rng.dirichlet(np.ones(m), 400) * rng.uniform(0.1, 10.0, (400, 1))
        q = rng.dirichlet(np.full(m, 0.3), 400)
        p[rng.random(p.shape) < 0.2] = 0.0
        p[:, 0] += 1e-3
        got = jensen_shannon_divergence(p, q)
        np.testing.assert_allclose(got, rel_entr_jsd(p, q), rtol=1e-15, atol=1e-16)


def test_almost_identical_rows_are_zero_not_nan():
    # rounding can make the divergence of near-equal rows about -1e-17; its root would be NaN
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(5), 2000)
    q = p * (1 + rng.integers(-3, 4, p.shape) * np.finfo(float).eps)
    got = jensen_shannon_divergence(p, q)
    assert np.isfinite(got).all() and (got >= 0).all() and got.max() < 1e-15
    assert (rel_entr_jsd(p, q) < 0).any()  # the case does occur


def test_one_dimensional():
    assert float(jensen_shannon_divergence([1, 0], [0, 1])) == pytest.approx(math.log(2), abs=1e-12)


@pytest.mark.parametrize(
    "p,q",
    [
        ([[0.5, np.nan]], [[0.5, 0.5]]),
        ([[1.5, -0.5]], [[0.5, 0.5]]),
        ([[0.0, 0.0]], [[0.5, 0.5]]),
        ([[0.5, 0.5]], [[0.5, 0.25, 0.25]]),
    ],
)
def test_bad_input(p, q):
    with pytest.raises(InputError):
        jensen_shannon_divergence(p, q)
