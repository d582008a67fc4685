"""Rejection metrics on per-cell scores: AUROC/AUPRC of unseen types, accuracy-coverage, false rejection, ECE."""

import itertools

import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.metrics import (
    accuracy_at_coverage, accuracy_coverage, auprc_unseen, aurc, auroc_unseen, expected_calibration_error,
    false_rejection_rate,
)
from cellquery.scoring import calibration_scores, rejection_scores

SEEN = np.array([True, True, False, False, True])


def test_auroc_perfect_reversed_and_tied():
    score = np.array([0.9, 0.8, 0.1, 0.2, 0.7])
    assert auroc_unseen(score, SEEN) == 1.0
    assert auroc_unseen(-score, SEEN) == 0.0
    assert auroc_unseen(np.full(5, 0.3), SEEN) == 0.5


def test_auroc_is_the_fraction_of_correctly_ordered_pairs():
    rng = np.random.default_rng(0)
    seen = rng.random(60) < 0.6
    score = rng.integers(0, 6, 60) / 5  # many ties
    pairs = [(s, u) for s in score[seen] for u in score[~seen]]
    brute = np.mean([1.0 if s > u else 0.5 if s == u else 0.0 for s, u in pairs])
    assert auroc_unseen(score, seen) == pytest.approx(brute)


def test_auprc_by_hand():
    # unseen cells are the class to find, by low score: order by -score
    assert auprc_unseen(np.array([0.9, 0.8, 0.1, 0.2, 0.7]), SEEN) == 1.0
    assert auprc_unseen(np.full(5, 0.5), SEEN) == pytest.approx(2 / 5)  # a constant: the unseen fraction
    # ascending score: 0.1 (unseen), 0.2 (seen), 0.3 (unseen), 0.8, 0.9 (seen):
    # precision at the two unseen cells 1/1 and 2/3 -> AP = (1 + 2/3) / 2
    score = np.array([0.8, 0.9, 0.1, 0.3, 0.2])
    assert auprc_unseen(score, SEEN) == pytest.approx((1 + 2 / 3) / 2)


def test_no_unseen_or_no_seen_cells_give_nan():
    assert np.isnan(auroc_unseen([0.1, 0.2], [True, True])) and np.isnan(auprc_unseen([0.1, 0.2], [True, True]))
    assert np.isnan(auroc_unseen([0.1, 0.2], [False, False]))


def test_nan_scores_count_as_least_confident():
    assert auroc_unseen([0.5, np.nan, 0.4], [True, False, True]) == 1.0
    with pytest.raises(InputError, match="infinite"):
        auroc_unseen([np.inf, 0.1], [True, False])
    with pytest.raises(InputError, match="length"):
        auroc_unseen([0.1, 0.2, 0.3], [True, False])


def test_aurc_of_a_four_cell_example():
    # by score: correct, wrong, correct, correct -> risk of the top 1..4: 0, 1/2, 1/3, 1/4
    score, correct = np.array([0.6, 0.9, 0.7, 0.8]), np.array([True, True, True, False])
    coverage, accuracy = accuracy_coverage(score, correct)
    np.testing.assert_allclose(coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(accuracy, [1.0, 1 / 2, 2 / 3, 3 / 4])
    assert aurc(score, correct) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert accuracy_at_coverage(score, correct, 0.5) == 0.5 and accuracy_at_coverage(score, correct, 0.6) == pytest.approx(2 / 3)
    assert aurc(score, np.ones(4, bool)) == 0.0 and aurc(score, np.zeros(4, bool)) == 1.0


def test_aurc_with_ties_is_the_mean_over_orders_of_the_tied_cells():
    # tied pair (one wrong) first: expected risk 1/2, 1/2; then two correct: 1/3, 1/4
    assert aurc([1.0, 1.0, 0.0, 0.0], [True, False, True, True]) == pytest.approx((1 / 2 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    rng = np.random.default_rng(1)
    for _ in range(5):
        score = rng.integers(0, 3, 7).astype(float)
        correct = rng.random(7) < 0.6
        values = []  # every order of the cells that keeps the scores descending
        for order in itertools.permutations(range(7)):
            if np.all(np.diff(score[list(order)]) <= 0):
                ok = correct[list(order)]
                values.append(np.mean([1 - ok[: i + 1].mean() for i in range(7)]))
        assert aurc(score, correct) == pytest.approx(np.mean(values))


def test_false_rejection_rate():
    rejected = np.array([True, False, True, True, False])
    assert false_rejection_rate(rejected, SEEN) == pytest.approx(1 / 3)  # seen cells 0, 1, 4: cell 0 rejected
    assert np.isnan(false_rejection_rate(rejected, np.zeros(5, bool)))


def test_ece_by_hand_and_against_a_loop():
    # bins (0.9, 1]: two cells, accuracy 1/2, confidence 0.95; (0.5, 0.6]: accuracy 1, 0.55; (0.1, 0.2]: 0, 0.15
    confidence, correct = np.array([0.95, 0.95, 0.55, 0.15]), np.array([True, False, True, False])
    assert expected_calibration_error(confidence, correct) == pytest.approx((2 * 0.45 + 0.45 + 0.15) / 4)
    rng = np.random.default_rng(2)
    p = rng.random(500)
    p[:5] = [0.0, 0.1, 0.2, 1.0, 0.5]  # bin edges: (m - 1) / M excluded, m / M included, 0 in the first bin
    ok = rng.random(500) < p
    loop = 0.0
    for m in range(10):
        inside = (p > m / 10) & (p <= (m + 1) / 10) if m else (p <= 0.1)
        if inside.any():
            loop += inside.sum() / len(p) * abs(ok[inside].mean() - p[inside].mean())
    assert expected_calibration_error(p, ok) == pytest.approx(loop)
    assert expected_calibration_error(np.ones(3), np.ones(3, bool)) == 0.0
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        expected_calibration_error([1.2], [True])


def predictions(**columns):
    # reference types A, B; X is unseen
    table = pd.DataFrame({
        "true_label": ["A", "A", "B", "B", "X", "X"],
        "prediction": ["A", "B", "B", "rejected", "rejected", "A"],
        "score": [0.9, 0.4, 0.8, 0.2, 0.1, 0.5],
    })
    return table.assign(**columns)


def test_rejection_scores_by_hand():
    scores = rejection_scores(predictions(), ["A", "B"])
    # seen scores 0.9, 0.4, 0.8, 0.2 vs unseen 0.1, 0.5: 2 + 1 + 2 + 1 of the 8 pairs ordered
    assert scores["auroc_unseen"] == pytest.approx(6 / 8)
    # seen cells by score: A (0.9, correct), B (0.8, correct), A (0.4, wrong), B (0.2, rejected: wrong)
    assert scores["aurc"] == pytest.approx((0 + 0 + 1 / 3 + 2 / 4) / 4)
    assert scores["accuracy@coverage_0.5"] == 1.0 and scores["accuracy@coverage_0.9"] == 0.5
    assert not any(k.startswith("false_rejection") or k == "ece" for k in scores)  # no P-value, no probability
    no_unseen = rejection_scores(predictions().iloc[:4], ["A", "B"])
    assert np.isnan(no_unseen["auroc_unseen"]) and np.isnan(no_unseen["auprc_unseen"]) and "aurc" in no_unseen
    with pytest.raises(InputError, match="score"):
        rejection_scores(predictions().drop(columns="score"), ["A", "B"])


def test_calibration_reads_the_sweep_of_p_value_runs_and_the_probability_of_classifiers():
    seen = np.array([True, True, True, True, False, False])
    swept = predictions(
        p_value=[0.001, 0.2, 0.03, 0.5, 0.9, 0.02],
        **{"sweep_0.01": ["rejected", "rejected", "rejected", "rejected", "rejected", "rejected"],
           "sweep_0.05": ["A", "rejected", "B", "rejected", "rejected", "A"]},
    )
    scores = calibration_scores(swept, seen)
    assert scores["false_rejection@0.01"] == 1.0 and scores["false_rejection@0.05"] == 0.5
    assert np.isnan(scores["false_rejection@0.1"])  # no sweep_0.1 column
    assert "ece" not in scores
    probability = [0.99, 0.92, 0.6, 0.96, 0.3, 0.95]
    top = ["A", "B", "B", "B", "A", "A"]  # cell 1's top class is wrong
    scores = calibration_scores(predictions(probability=probability, top_label=top), seen)
    # rejected below 1 - alpha: 0.99 -> < 0.99: 0.92, 0.6, 0.96; 0.95: 0.92, 0.6; 0.9: 0.6
    assert (scores["false_rejection@0.01"], scores["false_rejection@0.05"], scores["false_rejection@0.1"]) == (0.75, 0.5, 0.25)
    # seen cells: bins (0.9, 1] hold 0.99 (correct), 0.92 (wrong), 0.96 (correct); (0.5, 0.6] holds 0.6 (correct)
    assert scores["ece"] == pytest.approx((abs(2 - (0.99 + 0.92 + 0.96)) + abs(1 - 0.6)) / 4)


def calibration_summary():
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for alpha, realised in ((0.01, 0.3), (0.05, 0.2), (0.1, 0.1)):
            rows.append(("g", "cellblast", "native", "native", seed, "cellblast", f"false_rejection@{alpha:g}", realised + shift))
            rows.append(("g", "pca", "flat", "conformal", seed, "conformal-pca", f"false_rejection@{alpha:g}", alpha / 2))
        rows.append(("g", "pca", "flat", "conformal", seed, "conformal-pca", "mba", 0.8))
        rows.append(("g", "oracle", "native", "native", seed, "oracle", "false_rejection@0.05", 0.0))
    rows.append(("h", "pca", "flat", "conformal", 0, "conformal-pca", "false_rejection@0.1", np.nan))  # a level not swept
    return pd.DataFrame(rows, columns=["group", "method", "index", "transfer", "seed", "reported_as", "metric", "value"])


def test_calibration_curves_average_seeds(tmp_path):
    from cellquery.plots.calibration import calibration_curves, plot_calibration

    curves = calibration_curves(calibration_summary())
    assert set(curves["group"]) == {"g"}  # the NaN row is left out
    blast = curves[curves["shown"] == "cellblast"].sort_values("alpha")
    np.testing.assert_allclose(blast["alpha"], [0.01, 0.05, 0.1])
    np.testing.assert_allclose(blast["realised"], [0.31, 0.21, 0.11])
    np.testing.assert_allclose(blast["sd"], np.std([0.0, 0.02], ddof=1))
    out = tmp_path / "calibration.png"
    plot_calibration(calibration_summary(), out, controls=["oracle"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = tmp_path / "empty.png"
    plot_calibration(calibration_summary().iloc[:0], empty)
    assert empty.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
