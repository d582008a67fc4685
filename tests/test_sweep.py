"""Rejection sweep: MBA per threshold by hand, aggregation, and the Supp. Fig. 9c figure."""

import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.plots.rejection_sweep import plot_rejection_sweep, sweep_curves
from cellquery.scoring import sweep_scores
from cellquery.settings import GroupSettings
from cellquery.summary import SWEEP_COLUMNS, combine_sweeps

RUN = {"group": "g", "method": "m", "index": "flat", "transfer": "calibrated", "seed": 0, "reported_as": "calibrated-m"}
THRESHOLDS = [0.01, 0.2]


def predictions():
    # reference types A, B; X is a negative type (rejected is correct)
    return pd.DataFrame({
        "cell": [f"c{i}" for i in range(6)],
        "true_label": ["A", "A", "B", "B", "X", "X"],
        "prediction": ["A", "B", "B", "B", "A", "rejected"],
        "sweep_0.01": ["rejected", "rejected", "B", "rejected", "rejected", "rejected"],
        "sweep_0.2": ["A", "A", "B", "B", "A", "B"],
    })


def test_sweep_scores_by_hand():
    reference_obs = pd.DataFrame({"cell_type": ["A", "B"]})
    table = sweep_scores(predictions(), reference_obs=reference_obs, group=GroupSettings("cell_type"), run=RUN, thresholds=THRESHOLDS)
    assert list(table.columns) == SWEEP_COLUMNS
    assert np.isnan(table["threshold"].iloc[0]) and table["threshold"].iloc[1:].tolist() == [0.01, 0.2]
    # own setting: A 1/2, B 2/2 -> positive 0.75; X 1/2 -> negative 0.5; mba = mean of the two
    # 0.01: A 0/2, B 1/2 -> 0.25; X 2/2 -> 1.0.   0.2: A 2/2, B 2/2 -> 1.0; X 0/2 -> 0.0
    np.testing.assert_allclose(table["mba_positive"], [0.75, 0.25, 1.0])
    np.testing.assert_allclose(table["mba_negative"], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(table["mba"], [0.625, 0.625, 0.5])
    assert (table["method"] == "m").all() and (table["transfer"] == "calibrated").all()


def test_combine_sweeps_and_curves(tmp_path):
    reference_obs = pd.DataFrame({"cell_type": ["A", "B"]})
    paths = []
    for seed in (0, 1):
        table = sweep_scores(predictions(), reference_obs=reference_obs, group=GroupSettings("cell_type"), run={**RUN, "seed": seed}, thresholds=THRESHOLDS)
        if seed == 1:
            table["mba_negative"] = table["mba_negative"] / 2
        paths.append(tmp_path / f"s{seed}.tsv")
        table.to_csv(paths[-1], sep="\t", index=False)
    combined = combine_sweeps(paths)
    assert len(combined) == 6 and combined["seed"].tolist() == [0, 0, 0, 1, 1, 1]
    curves = sweep_curves(combined)
    assert len(curves) == 3 and np.isnan(curves["threshold"].iloc[0])
    np.testing.assert_allclose(curves["mba_negative"], [0.375, 0.75, 0.0])  # mean over the two seeds
    out = tmp_path / "sweep.png"
    plot_rejection_sweep(combined, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="threshold"):
        pd.DataFrame({c: [1] for c in SWEEP_COLUMNS if c != "threshold"}).to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
        combine_sweeps([tmp_path / "bad.tsv"])


def test_sweep_scores_every_sweep_column_unless_told_which():
    reference_obs = pd.DataFrame({"cell_type": ["A", "B"]})
    table = predictions().assign(**{"sweep_0.95": ["A", "A", "B", "B", "rejected", "rejected"], "sweep_x": ["A"] * 6})
    every = sweep_scores(table, reference_obs=reference_obs, group=GroupSettings("cell_type"), run=RUN)
    assert np.isnan(every["threshold"].iloc[0]) and every["threshold"].iloc[1:].tolist() == [0.01, 0.2, 0.95]
    np.testing.assert_allclose(every["mba_negative"].iloc[1:], [1.0, 0.0, 1.0])  # sweep_x is no threshold: skipped
    chosen = sweep_scores(table, reference_obs=reference_obs, group=GroupSettings("cell_type"), run=RUN, thresholds=[0.2])
    assert chosen["threshold"].iloc[1:].tolist() == [0.2]


def consensus_run(min_hits, n_models=3, seed=0):
    """A calibrated consensus transfer on random data: (predict_table output, settings)."""
    from cellquery.index import build_index
    from cellquery.index.calibration import calibrate
    from cellquery.settings import TransferSettings
    from cellquery.transfer import Model, predict_table

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(4, 5))
    types = rng.integers(0, 4, 400)
    reference = (centres[types] + rng.normal(size=(400, 5))).astype(np.float32)
    query = np.concatenate([centres[rng.integers(0, 4, 60)] * 1.2 + rng.normal(size=(60, 5)),
                            rng.normal(0, 8, size=(40, 5))]).astype(np.float32)  # some near, some far
    models = []
    for m in range(n_models):
        shift = rng.normal(0, 0.3, size=5).astype(np.float32)
        ref_m, qry_m = reference + shift, query + shift + rng.normal(0, 0.3, size=query.shape).astype(np.float32)
        index = build_index("faiss", ref_m, {"factory": "Flat"})
        models.append(Model(ref_m, qry_m, index.search(qry_m, 8)[1], calibrate(index, ref_m, k=5, n_pairs=5000, seed=m)))
    settings = TransferSettings.from_config({
        "voter": "majority", "min_hits": min_hits, "min_fraction": 0.5,
        "significance": {"p_cutoff": 0.05, "models": n_models},
    })
    table = predict_table(
        reference_obs=pd.DataFrame({"cell_type": types.astype(str)}),
        query_obs=pd.DataFrame({"cell_type": ["0"] * len(query)}, index=[f"q{i}" for i in range(len(query))]),
        distances=np.zeros(models[0].indices.shape), indices=models[0].indices, self_distances=np.ones((1, 1)),
        group=GroupSettings("cell_type"), settings=settings, models=models, sweep=[0.01, 0.05, 0.1, 0.2],
    )
    return table, settings


@pytest.mark.parametrize("min_hits, n_models", [(2, 3), (1, 1), (3, 2)])
def test_a_calibrated_cell_is_rejected_at_cut_off_t_exactly_when_its_p_value_is_at_least_t(min_hits, n_models):
    table, _ = consensus_run(min_hits, n_models)
    for t in (0.01, 0.05, 0.1, 0.2):
        rejected = table[f"sweep_{t:g}"] == "rejected"
        np.testing.assert_array_equal(rejected, table["p_value"] >= t)
    assert 0 < (table["prediction"] == "rejected").mean() < 1  # both kinds of cell occur
    np.testing.assert_array_equal(table["prediction"] == "rejected", table["p_value"] >= 0.05)
    np.testing.assert_allclose(table["score"], 1.0 - table["p_value"])


def test_cell_p_values_against_a_loop():
    from cellquery.transfer.acceptance import cell_p_values

    rng = np.random.default_rng(3)
    for n_models in (1, 2, 3, 4, 5):
        p = rng.random((n_models, 30, 6))
        indices = np.where(rng.random((30, 6)) < 0.15, -1, 1)
        for min_hits in (0, 1, 2, 6, 7):
            expected = []
            for q in range(30):
                # a hit's P-value: the smallest t at which a strict majority of models has P < t
                hit_p = sorted(np.sort(p[:, q, j])[n_models // 2] for j in range(6) if indices[q, j] >= 0)
                expected.append(0.0 if min_hits == 0 else hit_p[min_hits - 1] if len(hit_p) >= min_hits else 1.0)
            np.testing.assert_allclose(cell_p_values(p, indices, min_hits), expected)


def test_distance_cut_off_score_is_the_vote_share_times_the_counted_fraction():
    from cellquery.settings import TransferSettings
    from cellquery.transfer import predict_table

    reference_obs = pd.DataFrame({"cell_type": ["A", "A", "B", "B", "C"]})
    query_obs = pd.DataFrame({"cell_type": ["A", "B", "X"]}, index=["q1", "q2", "q3"])
    indices = np.array([[0, 1, 2, 4], [2, 3, 0, -1], [4, 1, 2, 3]])
    distances = np.array([[1.0, 2.0, 3.0, 9.0], [1.0, 1.0, 2.0, np.inf], [9.0, 9.0, 9.0, 9.0]])
    table = predict_table(
        reference_obs=reference_obs, query_obs=query_obs, distances=distances, indices=indices,
        self_distances=np.full(10, 5.0), group=GroupSettings("cell_type"),
        settings=TransferSettings("majority", min_hits=2, min_fraction=0.5, distance_quantile=0.95),
    )
    # cut-off 5: q1 counts 3 of 4 hits, A holds 2/3 of them; q2 3 of its 3 present hits, B 2/3; q3 none
    np.testing.assert_allclose(table["score"], [2 / 3 * 3 / 4, 2 / 3 * 1.0, 0.0])
    assert "p_value" not in table
