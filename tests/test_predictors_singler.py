"""SingleR (Bioconductor, through Rscript): interface, pruning as rejection, a hand-checked tiny case, skip."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cellquery.config import method_skip_reason
from cellquery.errors import InputError
from cellquery.predictors import run_predictor, singler

ABSENT = "erythroblast"
REASON = singler.runtime_missing()
needs_singler = pytest.mark.skipif(REASON is not None, reason=f"singler: {REASON}")


@pytest.fixture(scope="module")
def data(small_group):
    return small_group(ABSENT)


@needs_singler
def test_interface_accuracy_and_rejection(data, group, fates):
    ref, qry, genes = data
    table, ref_emb, qry_emb, timings = run_predictor(ref, qry, genes, predictor="singler", params={}, group=group, seed=0)
    assert len(table) == qry.n_obs and list(table["cell"]) == list(qry.obs_names)
    labels = set(ref.obs["cell_type"].astype(str))
    assert set(table["prediction"]) <= labels | {"rejected"} and set(table["top_label"]) <= labels
    # pruned cells are rejected; the others keep SingleR's label
    kept = table["prediction"] != "rejected"
    assert (table.loc[kept, "prediction"] == table.loc[kept, "top_label"]).all()
    assert np.isfinite(table["score"]).all() and (table["delta_next"] >= 0).all()
    # fates: the mean over the reference cells of the predicted label, NaN where rejected
    means = ref.obs.groupby(ref.obs["cell_type"].astype(str))[list(fates)].mean()
    np.testing.assert_allclose(table.loc[kept, [f"pred_{k}" for k in fates]], means.loc[table.loc[kept, "prediction"]].to_numpy())
    assert table.loc[~kept, [f"pred_{k}" for k in fates]].isna().all().all()
    assert ref_emb.obsm["X_emb"].shape == (ref.n_obs, 0) and set(timings["phase"]) == {"transfer_s"}
    positive = table["true_label"] != ABSENT
    assert (table.loc[positive, "prediction"] == table.loc[positive, "true_label"]).mean() > 0.8
    assert (table.loc[~positive, "prediction"] == "rejected").any()  # the absent type is pruned at least sometimes


@needs_singler
def test_tiny_case_profiles_get_their_label():
    # Hand-checked: each reference label has one expression profile (5 identical cells); a query cell
    # identical to a profile correlates perfectly (Spearman 1) with that label's cells and less with
    # the others, so SingleR gives it that label, before and after fine-tuning.
    rng = np.random.default_rng(3)
    profiles = np.log1p(rng.gamma(1.0, 5.0, size=(4, 60)) * (rng.random((4, 60)) < 0.6))
    labels = np.repeat(["T cell", "B cell", "NK cell", "monocyte"], 5)  # labels with spaces reach R intact
    obs = pd.DataFrame({"cell_type": labels}, index=[f"r{i}" for i in range(20)])
    reference = ad.AnnData(X=profiles[np.repeat(np.arange(4), 5)].astype(np.float32), obs=obs)
    order = [2, 0, 3, 1, 1, 2]
    query = ad.AnnData(X=profiles[order].astype(np.float32), obs=pd.DataFrame(index=[f"q{i}" for i in range(6)]))
    reference.var_names = query.var_names = [f"g_{j}" for j in range(60)]
    result = singler.predict(reference, query, list(reference.var_names), label_key="cell_type", seed=0)
    expected = np.array(["T cell", "B cell", "NK cell", "monocyte"])[order]
    np.testing.assert_array_equal(result.predictions["top_label"], expected)
    assert (result.predictions["delta_next"] > 0).all()


def test_missing_runtime_is_a_skip_reason(data, group, monkeypatch):
    ref, qry, genes = data
    reason = "needs R packages SingleR, which are not installed (Debian: apt-get install r-bioc-singler)"
    monkeypatch.setattr(singler, "runtime_missing", lambda: reason)
    with pytest.raises(InputError, match=r"predictor singler: needs R packages SingleR"):
        run_predictor(ref, qry, genes, predictor="singler", params={}, group=group, seed=0)
    config = {
        "datasets": {"d": {"values": "log-normalised"}}, "groups": {"g": {"reference": ["d"], "query": ["d"]}},
        "methods": {"singler": {"predictor": "singler"}},
    }
    assert method_skip_reason(config, "g", "singler") == reason
