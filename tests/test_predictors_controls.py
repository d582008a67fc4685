"""Control predictors (Open Problems' label projection task): every prediction checked by hand on a tiny group."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.metrics import mean_balanced_accuracy
from cellquery.predictors import PREDICTORS, run_predictor
from cellquery.predictors.controls import CONTROLS, Control, most_frequent
from cellquery.scoring import score_predictions
from cellquery.settings import GroupSettings

GROUP = GroupSettings(label_key="cell_type", continuous_keys=("f1", "f2"))
GENES = ["g1", "g2"]
# reference: 3 a, 2 b, 1 c; f1 means a 0.2, b 0.6, c 0.9 (f2 = 1 - f1, a fate distribution)
REF_LABELS = ["a", "a", "a", "b", "b", "c"]
REF_F1 = [0.1, 0.2, 0.3, 0.5, 0.7, 0.9]
MEAN_F1 = {"a": 0.2, "b": 0.6, "c": 0.9}
# query: one cell of each reference type and two of type d, absent from the reference (a negative type)
QRY_LABELS = ["a", "b", "c", "d", "d"]
QRY_F1 = [0.15, 0.55, 0.95, 0.4, 0.6]
REF_TYPES = ["a", "b", "c"]


def adata(labels, f1, values="log-normalised"):
    obs = pd.DataFrame({"cell_type": labels, "f1": f1, "f2": 1 - np.asarray(f1)}, index=[f"c{i}" for i in range(len(labels))])
    data = ad.AnnData(X=np.ones((len(labels), len(GENES)), np.float32), obs=obs, var=pd.DataFrame(index=GENES))
    data.uns["values"] = values
    return data


@pytest.fixture
def pair():
    return adata(REF_LABELS, REF_F1), adata(QRY_LABELS, QRY_F1)


def predict(name, pair, seed=0, keys=("f1", "f2")):
    reference, query = pair
    return PREDICTORS[name].predict(reference, query, GENES, label_key="cell_type", continuous_keys=list(keys), seed=seed)


def f1_of(result):
    return result.predictions["pred_f1"].to_numpy(float)


def test_registered_under_their_names_with_no_requirements():
    for name in CONTROLS:
        control = PREDICTORS[name]
        assert isinstance(control, Control) and control.name == name and control.REQUIRES == ()


def test_majority_label(pair):
    result = predict("majority_label", pair)
    assert result.predictions["prediction"].tolist() == ["a"] * 5
    np.testing.assert_allclose(f1_of(result), [0.2] * 5)
    np.testing.assert_allclose(result.predictions["pred_f2"], [0.8] * 5)
    assert result.reference_embedding is None and result.query_embedding is None
    assert most_frequent(np.array(["b", "b", "a", "a", "c"])) == "a"  # a tie goes to the first label in sorted order


def test_true_labels_reject_the_negative_type(pair):
    result = predict("true_labels", pair)
    assert result.predictions["prediction"].tolist() == ["a", "b", "c", "rejected", "rejected"]
    np.testing.assert_allclose(f1_of(result), [0.15, 0.55, 0.95, np.nan, np.nan])
    np.testing.assert_allclose(result.predictions["pred_f2"], [0.85, 0.45, 0.05, np.nan, np.nan])
    assert pair[1].obs["f1"].tolist() == QRY_F1  # the query's own values are left as they were


def test_reject_all(pair):
    result = predict("reject_all", pair)
    assert result.predictions["prediction"].tolist() == ["rejected"] * 5
    assert np.isnan(result.predictions[["pred_f1", "pred_f2"]].to_numpy()).all()


def test_random_labels_by_hand_and_seeded(pair):
    result = predict("random_labels", pair, seed=3)
    drawn = np.random.default_rng(3).choice(["a", "b", "c"], size=5, p=[3 / 6, 2 / 6, 1 / 6])
    assert result.predictions["prediction"].tolist() == drawn.tolist()
    np.testing.assert_allclose(f1_of(result), [MEAN_F1[label] for label in drawn])
    assert predict("random_labels", pair, seed=3).predictions.equals(result.predictions)


def test_random_labels_follow_the_reference_frequencies():
    n = 20000
    query = adata(["a"] * n, [0.5] * n)
    labels = predict("random_labels", (adata(REF_LABELS, REF_F1), query), seed=0).predictions["prediction"]
    other = predict("random_labels", (adata(REF_LABELS, REF_F1), query), seed=1).predictions["prediction"]
    assert "rejected" not in set(labels) and (labels != other).mean() > 0.5  # another seed, other draws
    frequencies = labels.value_counts(normalize=True)
    for label, expected in {"a": 3 / 6, "b": 2 / 6, "c": 1 / 6}.items():
        assert abs(frequencies[label] - expected) < 0.02  # binomial sd at most 0.0035


def test_no_continuous_keys_no_fate_columns(pair):
    for name in CONTROLS:
        assert list(predict(name, pair, keys=()).predictions.columns) == ["prediction", "score"]


def test_scores_ceiling_and_floors(pair):
    assert predict("true_labels", pair).predictions["score"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert predict("reject_all", pair).predictions["score"].tolist() == [0.0] * 5
    assert predict("majority_label", pair).predictions["score"].tolist() == [1.0] * 5
    drawn = predict("random_labels", pair, seed=3).predictions["score"].to_numpy()
    np.testing.assert_array_equal(drawn, np.random.default_rng([3, 1]).random(5))
    assert not np.array_equal(drawn, predict("random_labels", pair, seed=4).predictions["score"])


@pytest.mark.parametrize(
    "name, positive, negative",
    [("true_labels", 1.0, 1.0), ("reject_all", 0.0, 1.0), ("majority_label", 1 / 3, 0.0)],
)
def test_mba_bounds(pair, name, positive, negative):
    pred = predict(name, pair).predictions["prediction"].to_numpy()
    mba = mean_balanced_accuracy(np.array(QRY_LABELS), pred, REF_TYPES)
    assert (mba["positive"], mba["negative"], mba["mean"]) == (positive, negative, (positive + negative) / 2)


def test_scored_through_the_runner(pair):
    reference, query = pair
    for values in ("counts", "log-normalised"):  # REQUIRES = (): controls run on either
        reference.uns["values"] = query.uns["values"] = values
        table, ref_emb, qry_emb, timings = run_predictor(
            reference, query, GENES, predictor="true_labels", params={}, group=GROUP, seed=0
        )
        assert ref_emb.obsm["X_emb"].shape == (6, 0) and qry_emb.obsm["X_emb"].shape == (5, 0)
        assert timings["phase"].tolist() == ["query_s"]
    run = {"group": "g", "method": "true_labels", "index": "native", "transfer": "native", "seed": 0, "reported_as": "true_labels"}
    scores = score_predictions(table, reference_obs=reference.obs, group=GROUP, run=run).set_index("metric")["value"]
    assert scores["mba_positive"] == scores["mba_negative"] == scores["mba"] == scores["accuracy"] == 1.0
    assert scores["rejected_fraction"] == 0.4 and scores["jsd"] == 0.0  # true fates on the cells it does not reject
    # the ceiling of the score metrics: seen cells score 1, unseen 0; every seen cell correct
    assert scores["auroc_unseen"] == scores["auprc_unseen"] == 1.0 and scores["aurc"] == 0.0


def test_true_labels_needs_the_query_labels(pair):
    reference, query = pair
    del query.obs["cell_type"]
    with pytest.raises(InputError, match="query: obs column 'cell_type' is missing"):
        predict("true_labels", (reference, query))
