"""Transfer settings chosen by validation inside the reference (config value `auto`, cellquery.transfer.tuning)."""

import inspect
import itertools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cellquery.errors import InputError
from cellquery.index import build_index
from cellquery.index.calibration import calibrate_from_reference_hits
from cellquery.metrics import mean_balanced_accuracy
from cellquery.settings import AUTO, GroupSettings, TransferSettings
from cellquery.transfer import Model, predict_table
from cellquery.transfer.acceptance import accept_hits
from cellquery.transfer.tuning import GRID, TUNING_COLUMNS, read_tuning, reference_folds, tune_transfer

REPO = Path(__file__).resolve().parents[1]
K = 10


def calibrated(**significance) -> TransferSettings:
    return TransferSettings.from_config(
        {"voter": "majority", "min_hits": 2, "min_fraction": 0.5, "significance": {"models": 1, **significance}}
    )


SIGNIFICANCE = calibrated(p_cutoff=AUTO, shrinkage=AUTO)
DISTANCE = TransferSettings.from_config({"voter": "majority", "min_hits": 2, "min_fraction": 0.5, "distance_quantile": AUTO})


def reference(n_types=5, n_batches=2, per_cell=70, dim=8, seed=0):
    """Separated Gaussian types of different spread (dense and diffuse types), in ``n_batches`` shifted batches."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 6.0, (n_types, dim))
    spread = np.linspace(0.6, 2.0, n_types)
    labels = np.repeat([f"type{t}" for t in range(n_types)], per_cell)
    batches = np.array([f"batch{b}" for b in rng.integers(0, n_batches, len(labels))])
    codes = np.repeat(np.arange(n_types), per_cell)
    shift = rng.normal(0.0, 0.3, (n_batches, dim))[[int(b[5:]) for b in batches]]
    x = centers[codes] + spread[codes, None] * rng.normal(size=(len(labels), dim)) + shift
    return x.astype(np.float32), labels, batches


def brute_force(x, labels, batches, settings, point, seed=0):
    """Validation MBA of one grid point, the long way: each fold through predict_table, as the transfer rule runs."""
    scores = []
    for fold in reference_folds(labels, batches, seed=seed):
        ref, qry = x[fold.reference], x[fold.query]
        index = build_index("faiss", ref, {"factory": "Flat"})
        distances, indices = index.search(qry, K)
        self_d, self_i = index.search(ref, K + 1)
        calibration, self_distances = calibrate_from_reference_hits(ref, self_d, self_i, k=K, seed=seed)
        resolved = settings.resolved(point)
        table = predict_table(
            reference_obs=pd.DataFrame({"cell_type": labels[fold.reference]}),
            query_obs=pd.DataFrame({"cell_type": labels[fold.query]}, index=[f"c{i}" for i in fold.query]),
            distances=distances, indices=indices, self_distances=self_distances, group=GroupSettings("cell_type"),
            settings=resolved, models=[Model(ref, qry, indices, calibration)] if resolved.significance else None,
        )
        reference_types = sorted(set(labels[fold.reference]))
        scores.append(mean_balanced_accuracy(table["true_label"], table["prediction"], reference_types)["mean"])
    return float(np.mean(scores))


# ---------------------------------------------------------------------------
# (a) the chosen setting is the best grid point


@pytest.mark.parametrize("settings", [SIGNIFICANCE, DISTANCE], ids=["significance", "distance"])
def test_chosen_setting_is_the_best_of_a_brute_force_loop(settings):
    x, labels, batches = reference()
    keys = settings.auto_keys
    points = [dict(zip(keys, values)) for values in itertools.product(*(GRID[key] for key in keys))]
    brute = np.array([brute_force(x, labels, batches, settings, point) for point in points])
    result = tune_transfer(x, labels, batches, settings, k=K, seed=0)
    assert brute.max() - brute.min() > 0.02, "the grid must matter on this reference, else the test shows nothing"
    assert result.validation_mba == pytest.approx(brute.max(), abs=1e-12)
    first_best = int(np.flatnonzero(brute >= brute.max() - 1e-12)[0])
    assert result.chosen == points[first_best]
    np.testing.assert_allclose(result.grid["validation_mba"], brute, atol=1e-12)
    assert result.grid[list(keys)].to_dict("records") == points
    assert result.grid["chosen"].sum() == 1 and result.n_tied == int(result.grid["tied"].sum()) >= 1
    # the held-out types are negatives of their fold, and the chosen rule rejects most of them
    assert result.validation_mba > 0.8
    assert result.grid.loc[first_best, "mba_negative"] > 0.5


def test_ties_go_to_the_first_point_in_grid_order():
    x, labels, batches = reference()
    result = tune_transfer(x, labels, batches, DISTANCE, k=K, seed=0, grid={"distance_quantile": (0.8, 0.95, 0.95, 0.8)})
    best = 0 if result.grid.loc[0, "validation_mba"] > result.grid.loc[1, "validation_mba"] else 1
    assert result.n_tied == 2 and result.grid["tied"].tolist() == [best == 0, best == 1, best == 1, best == 0]
    assert result.grid["chosen"].tolist() == [best == 0, best == 1, False, False]  # the first of the tied points


def test_only_auto_settings_are_tuned_explicit_ones_kept():
    x, labels, batches = reference()
    settings = calibrated(p_cutoff=AUTO, shrinkage=0.5)
    result = tune_transfer(x, labels, batches, settings, k=K, seed=0)
    assert list(result.chosen) == ["p_cutoff"] and len(result.grid) == len(GRID["p_cutoff"])
    brute = [brute_force(x, labels, batches, settings, {"p_cutoff": p}) for p in GRID["p_cutoff"]]
    np.testing.assert_allclose(result.grid["validation_mba"], brute, atol=1e-12)
    with pytest.raises(InputError, match="no 'auto' setting"):
        tune_transfer(x, labels, batches, calibrated(p_cutoff=0.05), k=K, seed=0)


# ---------------------------------------------------------------------------
# the folds: held-out reference types as negatives, a reference batch as the query


def test_folds_hold_out_every_type_once_and_leave_one_batch_out():
    x, labels, batches = reference(n_types=4, n_batches=3)
    folds = reference_folds(labels, batches, seed=0)
    assert len(folds) == 4
    assert sorted(t for f in folds for t in f.held_out) == sorted(set(labels))
    for fold in folds:
        assert len(fold.held_out) == 1
        assert {fold.query_batch} == set(batches[fold.query])  # one whole batch is the pseudo-query
        assert np.isin(fold.held_out, labels[fold.query]).all()  # ... and it holds the negatives
        assert not np.isin(labels[fold.reference], fold.held_out).any()
        assert not set(batches[fold.reference]) & {fold.query_batch}
        assert set(fold.reference) | set(fold.query) | set(np.flatnonzero(np.isin(labels, fold.held_out))) == set(range(len(x)))
    assert len({f.query_batch for f in folds}) == 3  # batches taken in turn


def test_many_types_hold_out_a_fifth_per_fold():
    labels = np.repeat([f"t{i:02d}" for i in range(23)], 10)
    folds = reference_folds(labels, None, seed=3)
    assert len(folds) == 5
    assert sorted(len(f.held_out) for f in folds) == [4, 4, 5, 5, 5]  # about 20 % of 23 types each
    assert sorted(t for f in folds for t in f.held_out) == sorted(set(labels))


def test_single_batch_takes_a_seeded_30_percent_as_query():
    labels = np.repeat(["a", "b", "c"], 100)
    folds = reference_folds(labels, None, seed=1)
    assert all(len(f.query) == 90 and f.query_batch is None for f in folds)
    assert [f.query.tolist() for f in folds] == [f.query.tolist() for f in reference_folds(labels, ["one"] * 300, seed=1)]
    assert [f.query.tolist() for f in folds] != [f.query.tolist() for f in reference_folds(labels, None, seed=2)]
    with pytest.raises(InputError, match="at least 2 cell types"):
        reference_folds(["a"] * 10, None)


# ---------------------------------------------------------------------------
# (b) query labels never change a chosen setting


def test_the_tuning_api_has_no_query_input():
    names = list(inspect.signature(tune_transfer).parameters) + list(inspect.signature(reference_folds).parameters)
    assert not [name for name in names if "query" in name]


def dry_run_jobs(workdir):
    """(rule, inputs, wildcards) of every job of a dry run of the end-to-end toy config (toy.yaml + toy_paper.yaml)."""
    from conftest import TOY_FILES

    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", *map(str, TOY_FILES)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", result.stdout):
        rule = re.match(r"rule (\w+):", block)
        if rule:
            inputs = re.search(r"^\s+input: (.*)$", block, re.M)
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            jobs.append((
                rule.group(1),
                inputs.group(1).split(", ") if inputs else [],
                dict(kv.split("=", 1) for kv in wildcards.group(1).split(", ")) if wildcards else {},
            ))
    return jobs


def test_tune_transfer_jobs_read_no_query_file(tmp_path):
    from conftest import toy_config

    jobs = dry_run_jobs(tmp_path)
    toy = toy_config()
    tuned = {name for name, spec in toy["transfers"].items() if TransferSettings.from_config(spec).needs_tuning}
    assert tuned == {"calibrated", "consensus"}
    tune = [(inputs, w) for rule, inputs, w in jobs if rule == "tune_transfer"]
    assert tune and {w["transfer"] for _, w in tune} == tuned
    for inputs, w in tune:
        assert inputs == [f"results/{w['group']}/embeddings/{w['method']}/seed{w['seed']}/model0/reference_embedding.h5ad"]
        assert not [path for path in inputs if "query" in path]
    # the transfer and metrics jobs of a tuned transfer read its tuning file; the others have none
    for rule, inputs, w in jobs:
        if rule in ("transfer", "metrics") and w.get("transfer") in toy["transfers"]:
            has = [p for p in inputs if "/tuning/" in p]
            expected = [f"results/{w['group']}/embeddings/{w['method']}/seed{w['seed']}/tuning/{w['transfer']}.tsv"]
            assert has == (expected if w["transfer"] in tuned else []), (rule, w)


def test_same_seed_same_choice_and_reference_labels_matter():
    x, labels, batches = reference()
    first = tune_transfer(x, labels, batches, SIGNIFICANCE, k=K, seed=0)
    again = tune_transfer(x, labels, batches, SIGNIFICANCE, k=K, seed=0)
    assert again.chosen == first.chosen
    pd.testing.assert_frame_equal(again.grid, first.grid)
    shuffled = np.random.default_rng(5).permutation(labels)
    permuted = tune_transfer(x, shuffled, batches, SIGNIFICANCE, k=K, seed=0)
    assert not np.allclose(permuted.grid["validation_mba"], first.grid["validation_mba"])


# ---------------------------------------------------------------------------
# (c) settings resolution, config and the tuning file


def test_resolution_replaces_auto_and_keeps_explicit_values():
    assert SIGNIFICANCE.auto_keys == ("p_cutoff", "shrinkage") and SIGNIFICANCE.needs_tuning
    resolved = SIGNIFICANCE.resolved({"p_cutoff": 0.01, "shrinkage": 0.25})
    assert (resolved.significance.p_cutoff, resolved.significance.shrinkage) == (0.01, 0.25)
    assert not resolved.needs_tuning and resolved.significance.models == 1
    partly = calibrated(p_cutoff=AUTO, shrinkage=0.5, models=3)
    assert partly.auto_keys == ("p_cutoff",)
    kept = partly.resolved({"p_cutoff": 0.1, "shrinkage": 0.9})
    assert (kept.significance.p_cutoff, kept.significance.shrinkage, kept.n_models) == (0.1, 0.5, 3)
    assert DISTANCE.auto_keys == ("distance_quantile",)
    assert DISTANCE.resolved({"distance_quantile": 0.9}).distance_quantile == 0.9
    explicit = calibrated(p_cutoff=0.02, shrinkage=0.75)
    assert not explicit.needs_tuning and explicit.resolved({"p_cutoff": 0.5}) == explicit
    with pytest.raises(InputError, match="no tuned value for the auto setting"):
        SIGNIFICANCE.resolved({"p_cutoff": 0.01})


def test_unresolved_settings_are_refused_by_the_transfer():
    hits = np.zeros((2, 3)), np.zeros((2, 3), dtype=np.int64)
    with pytest.raises(InputError, match="is 'auto'; resolve it"):
        accept_hits(DISTANCE, distances=hits[0], indices=hits[1], self_distances=np.ones((2, 3)))


def test_schema_allows_auto_and_nothing_else():
    import jsonschema

    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    config = yaml.safe_load((REPO / "config/toy.yaml").read_text())
    jsonschema.validate(config, schema)
    config["transfers"]["majority"]["distance_quantile"] = AUTO
    jsonschema.validate(config, schema)
    config["transfers"]["calibrated"]["significance"]["p_cutoff"] = "often"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema)


def test_tuning_file_round_trip(tmp_path):
    from cellquery.io import write_table

    x, labels, batches = reference()
    result = tune_transfer(x, labels, batches, SIGNIFICANCE, k=K, seed=0)
    table = result.table()
    assert list(table.columns) == TUNING_COLUMNS and len(table) == 2 * len(result.grid)
    write_table(table, tmp_path / "calibrated.tsv")
    chosen, validation_mba = read_tuning(tmp_path / "calibrated.tsv")
    assert chosen == result.chosen and validation_mba == pytest.approx(result.validation_mba, rel=1e-14)


def test_workflow_scripts_write_and_report_the_choice(tmp_path, run_workflow_script):
    from types import SimpleNamespace

    from cellquery.io import embedding_adata, read_table, write_h5ad, write_table

    x, labels, batches = reference()
    obs = pd.DataFrame({"cell_type": labels, "study": batches}, index=[f"r{i}" for i in range(len(labels))])
    write_h5ad(embedding_adata(obs, x), tmp_path / "reference_embedding.h5ad")
    group = {"reference": ["r"], "query": ["q"], "label_key": "cell_type", "batch_keys": ["study"]}
    transfer = {"voter": "majority", "significance": {"p_cutoff": AUTO, "models": 1, "shrinkage": AUTO}}
    run_workflow_script("tune_transfer.py", SimpleNamespace(
        input=SimpleNamespace(reference=tmp_path / "reference_embedding.h5ad"),
        output=SimpleNamespace(tuning=tmp_path / "tuning/calibrated.tsv"),
        params=SimpleNamespace(transfer=transfer, group=group, k=K), wildcards=SimpleNamespace(seed="0"),
        log=[tmp_path / "tune.log"],
    ))
    direct = tune_transfer(x, labels, batches, SIGNIFICANCE, k=K, seed=0)
    chosen, validation_mba = read_tuning(tmp_path / "tuning/calibrated.tsv")
    assert chosen == direct.chosen and validation_mba == pytest.approx(direct.validation_mba, rel=1e-14)
    write_table(pd.DataFrame({"cell": ["q0", "q1"], "true_label": ["type0", "new"], "prediction": ["type0", "rejected"],
                              "score": [0.9, 0.1]}),
                tmp_path / "predictions.tsv")
    write_table(pd.DataFrame({"metric": ["map"], "value": [0.5]}), tmp_path / "embedding_metrics.tsv")
    query = pd.DataFrame({"cell_type": ["type0", "new"]}, index=["q0", "q1"])
    write_h5ad(embedding_adata(query, x[:2] + 0.01), tmp_path / "query_embedding.h5ad")
    wildcards = dict(group="g", kind="embeddings", method="pca", seed="0", index="flat", transfer="calibrated")
    # the metrics job also writes the run's rejection analyses (cellquery.novelty)
    analyses = ("novel_types", "rejected_cells", "distance_roc", "distance_roc_curves", "hit_datasets")
    for tuning in (True, False):
        files = dict(tuning=tmp_path / "tuning/calibrated.tsv") if tuning else {}
        run_workflow_script("metrics.py", SimpleNamespace(
            input=SimpleNamespace(predictions=tmp_path / "predictions.tsv", reference=tmp_path / "reference_embedding.h5ad",
                                  query=tmp_path / "query_embedding.h5ad",
                                  embedding_scores=tmp_path / "embedding_metrics.tsv", **files),
            output=SimpleNamespace(metrics=tmp_path / "metrics.tsv", sweep=tmp_path / "sweep.tsv",
                                   **{name: tmp_path / f"{name}.tsv" for name in analyses}),
            params=SimpleNamespace(group=group, reported_as="calibrated-pca", sweep=[], k=K), wildcards=wildcards,
            log=[tmp_path / "metrics.log"],
        ))
        rejected = read_table(tmp_path / "rejected_cells.tsv")
        assert rejected["cell"].tolist() == ["q1"] and rejected["true_label"].tolist() == ["new"]
        values = dict(zip(*read_table(tmp_path / "metrics.tsv")[["metric", "value"]].T.values))
        tuned = {"tuned_p_cutoff": chosen["p_cutoff"], "tuned_shrinkage": chosen["shrinkage"], "validation_mba": validation_mba}
        assert {k: values.get(k) for k in tuned} == (pytest.approx(tuned, rel=1e-14) if tuning else dict.fromkeys(tuned))
        assert values["mba"] == 1.0


def test_choose_voter_picks_the_largest_reference_mba_and_the_first_on_ties():
    from cellquery.transfer.tuning import choose_voter

    labels = np.array(["a"] * 90 + ["b"] * 10)
    # two 'b' cells whose 3 hits are 2 'a' + 1 'b', two 'a' cells with 3 'a' hits
    rows = np.array([90, 91, 0, 1])
    I = np.array([[2, 3, 92], [4, 5, 93], [2, 3, 4], [5, 6, 7]])
    D = np.full(I.shape, 1.0)
    voter, scores = choose_voter(labels, rows, D, I, ("majority", "balanced"))
    # majority: 'a' for the 'b' cells (MBA (1 + 0) / 2); balanced: 2/90 for 'a' < 1/10 for 'b' (MBA 1)
    assert scores == {"majority": 0.5, "balanced": 1.0} and voter == "balanced"
    voter, scores = choose_voter(labels, rows[2:], D[2:], I[2:], ("balanced", "majority"))
    assert scores == {"balanced": 1.0, "majority": 1.0} and voter == "balanced"  # a tie: the first named
