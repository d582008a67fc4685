"""Calibrated rejection: local scales, empirical P-values, consensus across models."""

import numpy as np
import pandas as pd
import pytest

from cellquery.index import build_index
from cellquery.index.calibration import Calibration, calibrate, local_scales, null_distances
from cellquery.settings import GroupSettings, TransferSettings
from cellquery.transfer import predict_table, transfer_labels
from cellquery.transfer.acceptance import Model, candidate_hits, exact_distances, p_values, significant_by_consensus


def mixture(n, seed, centres=None, dim=8):
    """Gaussian clusters with different spreads (so local scales matter)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, size=(6, dim)) if centres is None else centres
    spreads = np.array([0.3, 0.5, 1.0, 1.5, 2.0, 0.8])
    types = rng.integers(0, len(centres), size=n)
    x = centres[types] + rng.normal(size=(n, dim)) * spreads[types, None]
    return x.astype(np.float32), types, centres


class BruteIndex:
    def __init__(self, x):
        self.x = x.astype(np.float64)

    def search(self, q, k):
        d = np.sqrt(((q[:, None, :].astype(np.float64) - self.x[None]) ** 2).sum(-1))
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d, order, axis=1), order


def test_local_scales_match_brute_force():
    x, _, _ = mixture(300, 0)
    scale = local_scales(build_index("faiss", x, {"factory": "Flat"}), x, k=5)
    d = np.sqrt(((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(scale, np.sort(d, axis=1)[:, 4], rtol=1e-4)


def test_null_pairs_are_distinct_and_normalised_by_hand():
    x = np.array([[0.0], [3.0], [4.0]], dtype=np.float32)
    scale = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    null = null_distances(x, scale, n_pairs=2000, seed=1)
    # the only possible values: |a-b| / scale_b for a != b
    possible = {3 / 2, 4 / 4, 3 / 1, 1 / 4, 4 / 1, 1 / 2}
    assert set(np.round(np.unique(null), 9)) <= {round(v, 9) for v in possible}
    assert np.all(np.diff(null) >= 0) and 0.0 not in null


def test_p_values_are_uniform_on_held_out_reference_cells():
    x, _, centres = mixture(4000, 0)
    held, _, _ = mixture(1500, 1, centres)
    calibration = calibrate(BruteIndex(x), x, k=10, n_pairs=50_000, seed=0)
    rng = np.random.default_rng(7)
    a = rng.integers(0, len(held), 20_000)
    b = rng.integers(0, len(x), 20_000)
    d = np.linalg.norm(held[a].astype(np.float64) - x[b], axis=1)
    p = p_values(d[:, None], b[:, None], calibration).ravel()
    # held-out cells of the reference's own types, paired at random: P ~ Uniform(0, 1)
    from scipy.stats import kstest

    assert kstest(p, "uniform").statistic < 0.03
    for q in (0.05, 0.1, 0.5):
        assert np.mean(p < q) == pytest.approx(q, abs=0.015)


def settings(**extra):
    return TransferSettings.from_config({"voter": "majority", "min_hits": 2, "min_fraction": 0.5, "significance": {"p_cutoff": 0.05}, **extra})


def run(models, ref_types, query_n):
    reference_obs = pd.DataFrame({"cell_type": ref_types.astype(str)})
    query_obs = pd.DataFrame({"cell_type": ["?"] * query_n}, index=[f"q{i}" for i in range(query_n)])
    m = models[0]
    return predict_table(
        reference_obs=reference_obs, query_obs=query_obs, distances=np.zeros(m.indices.shape), indices=m.indices,
        self_distances=np.ones((1, 1)), group=GroupSettings("cell_type"), settings=settings(), models=models,
    )


def test_far_query_is_rejected_and_identical_query_is_accepted():
    x, types, _ = mixture(2000, 0)
    index = build_index("faiss", x, {"factory": "Flat"})
    calibration = calibrate(index, x, k=10, seed=0)
    query = np.concatenate([x[:50], x[:50] + 1000.0]).astype(np.float32)
    _, indices = index.search(query, 10)
    table = run([Model(x, query, indices, calibration)], types, len(query))
    assert (table.prediction[:50].to_numpy() == types[:50].astype(str)).mean() > 0.95
    assert (table.prediction[50:] == "rejected").all()
    assert (table.best_hit_p[50:] == 1.0).all()


def test_one_model_consensus_equals_the_single_model_rule():
    x, types, centres = mixture(1500, 0)
    query, _, _ = mixture(300, 2, centres * 1.3)  # shifted: some hits significant, some not
    index = build_index("faiss", x, {"factory": "Flat"})
    calibration = calibrate(index, x, k=10, seed=0)
    _, indices = index.search(query, 10)
    table = run([Model(x, query, indices, calibration)], types, len(query))
    d = exact_distances(query, x, indices)
    mask = p_values(d, indices, calibration) < 0.05
    single = transfer_labels(types.astype(str), d, indices, mask=mask)
    assert table.prediction.tolist() == single.prediction.tolist()
    assert 0 < (single.prediction == "rejected").mean() < 1


def test_consensus_needs_a_strict_majority_of_models():
    # one query, reference cells 0..2 on a line; three models that place the query differently
    ref = np.array([[0.0], [10.0], [20.0]], dtype=np.float32)
    cal = Calibration(scale=np.ones(3, np.float32), null=np.linspace(0.0, 100.0, 101))
    # P = fraction of null <= d: d=1 -> 2/101 (significant at 0.05), d=20 -> 21/101 (not)
    near0 = np.array([[1.0]], np.float32)
    near1 = np.array([[11.0]], np.float32)
    hits = np.array([[0, 1]])
    models = [Model(ref, near0, hits, cal), Model(ref, near0, hits, cal), Model(ref, near1, hits, cal)]
    _, indices, mask, p = significant_by_consensus(models, p_cutoff=0.05)
    assert indices.tolist() == [[0, 1, -1, -1, -1, -1]]
    # hit 0 is significant in models 1 and 2 (2 of 3): counts; hit 1 only in model 3: does not
    assert mask[0].tolist() == [True, False, False, False, False, False]
    np.testing.assert_allclose(p[:, 0, 0], [2 / 101, 2 / 101, 12 / 101])


def test_candidate_hits_union_drops_repeats():
    a = np.array([[3, 1, 2]])
    b = np.array([[1, 5, 3]])
    m = [Model(None, np.zeros((1, 1)), a, None), Model(None, np.zeros((1, 1)), b, None)]
    assert candidate_hits(m).tolist() == [[3, 1, 2, -1, 5, -1]]


def test_sweep_columns_equal_runs_with_those_cut_offs():
    # each sweep column is what a run with that P-value cut-off predicts; 1 and 3 models
    x, types, centres = mixture(1500, 0)
    query, _, _ = mixture(300, 2, centres * 1.3)
    reference_obs = pd.DataFrame({"cell_type": types.astype(str)})
    query_obs = pd.DataFrame({"cell_type": ["?"] * len(query)}, index=[f"q{i}" for i in range(len(query))])
    models = []
    for seed in range(3):
        shift = np.random.default_rng(seed).normal(0, 0.05, size=x.shape[1]).astype(np.float32)
        index = build_index("faiss", x + shift, {"factory": "Flat"})
        models.append(Model(x + shift, query, index.search(query, 10)[1], calibrate(index, x + shift, k=10, seed=seed)))
    for n_models in (1, 3):
        common = dict(
            reference_obs=reference_obs, query_obs=query_obs, distances=np.zeros(models[0].indices.shape),
            indices=models[0].indices, self_distances=np.ones((1, 1)), group=GroupSettings("cell_type"), models=models[:n_models],
        )
        swept = predict_table(settings=settings(), sweep=[0.01, 0.2], **common)
        rejected = []
        for t in (0.01, 0.2):
            alone = predict_table(settings=settings(significance={"p_cutoff": t}), **common)
            assert swept[f"sweep_{t:g}"].tolist() == alone["prediction"].tolist()
            rejected.append((alone["prediction"] == "rejected").sum())
        assert rejected[0] > rejected[1]  # a stricter cut-off rejects more
        assert "sweep_0.05" not in swept and swept["prediction"].tolist() == predict_table(settings=settings(), **common)["prediction"].tolist()


def test_shrunk_scales_and_null_by_hand(tmp_path):
    x = np.array([[0.0], [3.0], [4.0]], dtype=np.float32)
    scale = np.array([1.0, 4.0, 16.0], dtype=np.float32)  # median 4
    cal = Calibration.from_pairs(scale, np.array([3.0, 1.0, 4.0]), np.array([1, 2, 0]))
    np.testing.assert_allclose(cal.null, np.sort([3 / 4, 1 / 16, 4 / 1]))
    half = cal.shrunk(0.5)  # sqrt(scale * 4): 2, 4, 8
    np.testing.assert_allclose(half.scale, [2.0, 4.0, 8.0])
    np.testing.assert_allclose(half.null, np.sort([3 / 4, 1 / 8, 4 / 2]))
    flat = cal.shrunk(1.0)  # every scale is the median: P-values follow raw distances
    np.testing.assert_allclose(flat.scale, [4.0, 4.0, 4.0])
    # null (3/4, 1/4, 4/4); a hit at 3.6 normalises to 0.9: two of three null values lie at or below it
    np.testing.assert_allclose(p_values(np.array([[0.9 * 4]]), np.array([[2]]), flat), [[2 / 3]])
    assert cal.shrunk(0.0) is cal
    cal.save(tmp_path / "c.npz")
    back = Calibration.load(tmp_path / "c.npz")
    np.testing.assert_allclose(back.shrunk(0.5).null, half.null)
    with pytest.raises(Exception, match="shrinkage must be in"):
        cal.shrunk(1.5)
    with pytest.raises(Exception, match="cannot be shrunk"):
        Calibration(scale=scale, null=cal.null).shrunk(0.5)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(Exception, match="bad.npz: not a calibration file"):
        Calibration.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("shrinkage", [0.5, 1.0])
def test_shrunk_p_values_stay_uniform_on_held_out_reference_cells(shrinkage):
    x, _, centres = mixture(4000, 0)
    held, _, _ = mixture(1500, 1, centres)
    calibration = calibrate(BruteIndex(x), x, k=10, n_pairs=50_000, seed=0).shrunk(shrinkage)
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, len(held), 20_000), rng.integers(0, len(x), 20_000)
    p = p_values(np.linalg.norm(held[a].astype(np.float64) - x[b], axis=1)[:, None], b[:, None], calibration).ravel()
    for q in (0.05, 0.1, 0.5):
        assert np.mean(p < q) == pytest.approx(q, abs=0.015)


def test_shrinkage_reaches_predict_table():
    x, types, centres = mixture(1500, 0)
    query, _, _ = mixture(300, 2, centres * 1.3)
    index = build_index("faiss", x, {"factory": "Flat"})
    cal = calibrate(index, x, k=10, seed=0)
    indices = index.search(query, 10)[1]
    reference_obs = pd.DataFrame({"cell_type": types.astype(str)})
    query_obs = pd.DataFrame({"cell_type": ["?"] * len(query)}, index=[f"q{i}" for i in range(len(query))])
    table = predict_table(
        reference_obs=reference_obs, query_obs=query_obs, distances=np.zeros(indices.shape), indices=indices,
        self_distances=np.ones((1, 1)), group=GroupSettings("cell_type"),
        settings=settings(significance={"p_cutoff": 0.05, "shrinkage": 0.5}), models=[Model(x, query, indices, cal)],
    )
    d = exact_distances(query, x, indices)
    single = transfer_labels(types.astype(str), d, indices, mask=p_values(d, indices, cal.shrunk(0.5)) < 0.05)
    assert table.prediction.tolist() == single.prediction.tolist()
