"""End-to-end: config/toy.yaml + config/toy_paper.yaml through Snakemake in a temporary directory."""

import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from cellquery.index.reduce import reduced_skip_reason
from cellquery.predictors import SCORE_THRESHOLDS
from conftest import TOY_FILES

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
BASE_METRICS = {"accuracy", "mba_positive", "mba_negative", "mba"}
SCORE_METRICS = {"auroc_unseen", "auprc_unseen", "aurc"}


def snakemake(workdir, *args, check=True):
    cmd = SNAKEMAKE + ["-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result


@pytest.fixture(scope="module")
def toy(toy_run):
    """(working directory, config) of the shared toy run (tests/conftest.py)."""
    return toy_run.workdir, toy_run.config


def expected_runs(config):
    """(group, method, index, transfer, seed, reported_as, skip reason) of every run the config asks for."""
    from cellquery.config import method_kind, method_skip_reason

    for group, subset in config["groups"].items():
        for method, spec in config["methods"].items():
            # a group may run a subset of the methods, indexes and transfers (groups.<name>.methods, ...)
            if method not in subset.get("methods", config["methods"]):
                continue
            reason = method_skip_reason(config, group, method)
            if method_kind(config, method) == "predictor":
                pairs = [("native", "native")]
            else:
                pairs = [(i, t) for i in spec.get("indexes", config["indexes"]) for t in spec.get("transfers", config["transfers"])
                         if i in subset.get("indexes", [i]) and t in subset.get("transfers", [t])]
            for index, transfer in pairs:
                report_as = config["transfers"].get(transfer, {}).get("report_as")
                name = f"{report_as}-{method}" if report_as else method
                # a reduced index (meta cells) runs distance cut-off transfers with the majority voter only
                why = reason or reduced_skip_reason(config, index, transfer)
                for seed in config["seeds"]:
                    yield group, method, index, transfer, seed, name, why


def test_summary_has_every_expected_row(toy):
    workdir, config = toy
    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t")
    assert list(summary.columns) == ["group", "method", "index", "transfer", "seed", "reported_as", "metric", "value"]
    runs = list(expected_runs(config))
    assert any(r[6] for r in runs) and any(not r[6] for r in runs)
    for group, method, index, transfer, seed, name, reason in runs:
        rows = summary[
            (summary.group == group) & (summary.method == method) & (summary["index"] == index)
            & (summary.transfer == transfer) & (summary.seed == seed)
        ]
        assert (rows.reported_as == name).all()
        if reason:
            assert rows["metric"].tolist() == [f"skipped: {reason}"]
            assert reason in ("needs raw counts but the group's values are log-normalised",
                              "needs spatial coordinates but the group has none (groups.<name>.spatial: {section_key, radius})",
                              reduced_skip_reason(config, index, transfer))
            continue
        values = dict(zip(rows.metric, rows.value))
        assert BASE_METRICS <= set(values), (group, method, index, transfer, seed)
        for name in BASE_METRICS:
            assert 0.0 <= values[name] <= 1.0, (name, values[name])
        assert values["mba"] == pytest.approx((values["mba_positive"] + values["mba_negative"]) / 2)
    # nothing else: every summary row belongs to an expected run
    keys = {run[:6] for run in runs}
    assert set(map(tuple, summary[["group", "method", "index", "transfer", "seed", "reported_as"]].values.tolist())) == keys


def test_mba_negative_is_computed_from_rejected_cells(toy):
    workdir, _ = toy
    run = workdir / "results/simulated/embeddings/pca/seed0/flat/majority"
    predictions = pd.read_csv(run / "predictions.tsv", sep="\t")
    embedding = workdir / "results/simulated/embeddings/pca/seed0/model0/reference_embedding.h5ad"
    reference_types = set(ad.read_h5ad(embedding).obs["cell_type"].astype(str))
    negative = sorted(set(predictions.true_label) - reference_types)
    assert negative, "the simulated query must hold types absent from the reference"
    per_type = [np.mean(predictions.prediction[predictions.true_label == t] == "rejected") for t in negative]
    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t")
    row = summary[
        (summary.group == "simulated") & (summary.method == "pca") & (summary["index"] == "flat")
        & (summary.transfer == "majority") & (summary.metric == "mba_negative")
    ]
    assert row.value.iloc[0] == pytest.approx(np.mean(per_type))


def test_sharded_flat_equals_flat(toy):
    workdir, _ = toy
    for group in ("simulated", "pbmc68k"):
        base = workdir / f"results/{group}/embeddings/pca/seed0/model0"
        flat, sharded = np.load(base / "flat/hits.npz"), np.load(base / "flat_sharded/hits.npz")
        np.testing.assert_array_equal(sharded["indices"], flat["indices"])
        np.testing.assert_allclose(sharded["distances"], flat["distances"], rtol=1e-5)
    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t")
    # the groups that run pca on both indexes (the spatial group has flat alone)
    both = summary.group.isin(["simulated", "pbmc68k"])
    pca = summary[both & (summary.method == "pca")].set_index(["group", "method", "transfer", "metric", "index"]).value
    # every metric but the index's own size (three shard files carry three headers)
    pca = pca[pca.index.get_level_values("metric") != "bytes_per_cell"]
    assert pca.xs("flat", level="index").round(12).equals(pca.xs("flat_sharded", level="index").round(12))


def test_benchmarks_and_figure(toy):
    workdir, _ = toy
    bench = pd.read_csv(workdir / "results/benchmarks.tsv", sep="\t")
    assert {"rule", "job", "wall_s", "max_rss_mb"} <= set(bench.columns)
    expected_rules = {"load_dataset", "preprocess", "hvg", "embed", "build_index", "query_index", "transfer", "metrics",
                      "record_skip", "aggregate", "figure_mba", "predict", "embedding_metrics", "merge_hits", "figure_mba_box",
                      "aggregate_sweep", "figure_rejection_sweep", "tune_transfer", "figure_calibration"}
    assert expected_rules <= set(bench.rule)
    assert (bench.wall_s >= 0).all()
    png = (workdir / "results/figures/mba_pos_neg.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_rejection_sweep(toy):
    workdir, config = toy
    sweep = pd.read_csv(workdir / "results/rejection_sweep.tsv", sep="\t")
    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t")
    thresholds = sorted(config.get("rejection_sweep", [0.01, 0.02, 0.05, 0.1, 0.2]))
    ran = {r[:6] for r in expected_runs(config) if not r[6]}
    keys = ["group", "method", "index", "transfer", "seed", "reported_as"]
    assert set(map(tuple, sweep[keys].values.tolist())) == ran
    for run, rows in sweep.groupby(keys):
        own = rows[rows.threshold.isna()]
        assert len(own) == 1  # the run's own setting equals its summary rows
        values = summary.set_index(keys + ["metric"]).value
        for metric in ("mba_positive", "mba_negative"):
            assert own[metric].iloc[0] == pytest.approx(values[(*run, metric)])
        swept = rows[rows.threshold.notna()].sort_values("threshold")
        method, transfer = run[1], run[3]
        predictor = config["methods"][method].get("predictor")
        cellblast = predictor == "cellblast"  # Cell BLAST sweeps its P-value cut-off
        if predictor in ("cellmapper", "scanvi", "seurat", "symphony", "gnn", "gnn_pretrained"):
            # a cut-off on the tool's own score (min_confidence, min_probability, min_score): stricter as t grows
            assert swept.threshold.tolist() == pytest.approx(list(SCORE_THRESHOLDS)), run
            assert (np.diff(swept.mba_negative.to_numpy()) >= -1e-12).all(), run
        elif transfer != "native" or cellblast:
            assert swept.threshold.tolist() == pytest.approx(thresholds), run
            # P-value cut-offs: a higher t lets more hits count, so negative types are rejected no more often;
            # distance cut-offs (quantile 1 - t of the reference's own hits): a higher t is stricter
            step = np.diff(swept.mba_negative.to_numpy())
            by_p = cellblast or "significance" in config["transfers"].get(transfer, {})
            assert (step <= 1e-12).all() if by_p else (step >= -1e-12).all(), run
        else:
            assert swept.empty, run
    # calibrated transfers at their own P-value cut-off (`auto`: chosen inside the reference, the run's
    # metric tuned_p_cutoff) equal the sweep's point there, wherever the sweep has that cut-off
    from cellquery.transfer.tuning import GRID

    assert config["transfers"]["calibrated"]["significance"]["p_cutoff"] == "auto"
    values = summary.set_index(keys + ["metric"]).value
    calibrated = sweep[(sweep.transfer == "calibrated")]
    assert len(calibrated)
    compared = 0
    for run, rows in calibrated.groupby(keys):
        cutoff = values[(*run, "tuned_p_cutoff")]
        assert cutoff in GRID["p_cutoff"] and 0.0 <= values[(*run, "validation_mba")] <= 1.0, run
        own, at = rows[rows.threshold.isna()], rows[np.isclose(rows.threshold, cutoff)]
        if at.empty:  # a tuned cut-off that the sweep does not list (0.005)
            continue
        compared += 1
        assert own.mba_negative.iloc[0] == pytest.approx(at.mba_negative.iloc[0])
        assert own.mba_positive.iloc[0] == pytest.approx(at.mba_positive.iloc[0])
    assert compared
    png = (workdir / "results/figures/rejection_sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_default_and_paper_configs_plan(tmp_path, name):
    result = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / name))
    config = yaml.safe_load((REPO / "config" / name).read_text())
    runs = list(expected_runs(config))
    computed = sum(1 for r in runs if not r[6])
    # one metrics job per computed run, one skip record per skipped run, every figure
    import re

    assert re.search(r"(?m)^metrics\s+(\d+)\s*$", result.stdout).group(1) == str(computed)
    # one embedding_metrics job per computed (group, method, seed), none for a control (it has no embedding)
    from cellquery.predictors.controls import CONTROLS

    embedded = {(r[0], r[1], r[4]) for r in runs if not r[6] and config["methods"][r[1]].get("predictor") not in CONTROLS}
    assert any(config["methods"][r[1]].get("predictor") in CONTROLS for r in runs if not r[6])
    assert re.search(r"(?m)^embedding_metrics\s+(\d+)\s*$", result.stdout).group(1) == str(len(embedded))
    for rule in ("figure_mba", "figure_rejection_sweep", "aggregate_sweep", "gather_benchmarks", "figure_calibration"):
        assert rule in result.stdout
    assert not (tmp_path / "results").exists()


def test_bad_config_stops_before_any_job(tmp_path):
    config = yaml.safe_load((REPO / "config/toy.yaml").read_text())
    config["k"] = "thirty"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "--configfile", str(bad), check=False)
    assert result.returncode != 0
    assert "'thirty' is not of type 'integer'" in result.stdout + result.stderr
    config = yaml.safe_load((REPO / "config/toy.yaml").read_text())
    config["groups"]["simulated"]["reference"] = ["no_such_dataset"]
    bad.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "--configfile", str(bad), check=False)
    assert result.returncode != 0
    assert "groups.simulated.reference: unknown dataset 'no_such_dataset'" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_controls_bound_every_group(toy):
    """The controls run on every group: true_labels is the ceiling (MBA exactly 1), reject_all rejects everything."""
    workdir, config = toy
    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t")
    controls = summary[summary.method.isin(["true_labels", "reject_all", "majority_label", "random_labels"])]
    values = controls.set_index(["group", "method", "metric"]).value
    for group in config["groups"]:
        assert values[(group, "true_labels", "mba_positive")] == 1.0
        assert values[(group, "true_labels", "mba_negative")] == 1.0
        assert values[(group, "true_labels", "mba")] == 1.0
        assert values[(group, "reject_all", "mba_positive")] == 0.0
        assert values[(group, "reject_all", "mba_negative")] == 1.0
        assert values[(group, "reject_all", "rejected_fraction")] == 1.0
        assert values[(group, "majority_label", "rejected_fraction")] == 0.0
        assert values[(group, "random_labels", "rejected_fraction")] == 0.0


def test_every_run_scores_its_rejection(toy):
    """Every computed run, controls included, writes a per-cell score and has AUROC, AUPRC and AURC rows;
    true_labels is their ceiling; runs with P-values or probabilities are calibrated; calibration.png is drawn."""
    workdir, config = toy
    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t")
    keys = ["group", "method", "index", "transfer", "seed", "reported_as"]
    values = summary.set_index(keys + ["metric"]).value
    computed = [r for r in expected_runs(config) if not r[6]]
    assert {r[1] for r in computed} >= {"true_labels", "reject_all", "majority_label", "random_labels"}
    for run in computed:
        group, method, index, transfer, seed = run[:5]
        kind = "predictors" if config["methods"][method].get("predictor") else "embeddings"
        predictions = pd.read_csv(workdir / f"results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}/predictions.tsv", sep="\t")
        assert predictions["score"].notna().all(), run
        for metric in SCORE_METRICS:
            assert (*run[:6], metric) in values.index, (run, metric)
        assert 0.0 <= values[(*run[:6], "aurc")] <= 1.0, run
        auroc = values[(*run[:6], "auroc_unseen")]
        assert 0.0 <= auroc <= 1.0, run  # every toy group has negative types
        predictor = config["methods"][method].get("predictor")
        rule = config["transfers"].get(transfer, {})
        probabilities = predictor in ("scanvi", "gnn", "gnn_pretrained")  # a class probability column
        calibrated = probabilities or predictor == "cellblast" or "significance" in rule or "conformal" in rule  # P-values, probabilities
        for alpha in ("0.01", "0.05", "0.1"):
            assert ((*run[:6], f"false_rejection@{alpha}") in values.index) == calibrated, (run, alpha)
        assert ((*run[:6], "ece") in values.index) == probabilities, run
    for group in config["groups"]:
        ceiling = summary[(summary.group == group) & (summary.method == "true_labels")].set_index("metric").value
        for metric, best in (("auroc_unseen", 1.0), ("auprc_unseen", 1.0), ("aurc", 0.0)):
            assert np.all(ceiling.loc[metric] == best), (group, metric)
        floor = summary[(summary.group == group) & (summary.method == "reject_all")].set_index("metric").value
        assert np.all(floor.loc["auroc_unseen"] == 0.5) and np.all(floor.loc["aurc"] == 1.0), group
    png = (workdir / "results/figures/calibration.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_summary_table_and_mba_box(toy):
    """results/summary_table.tsv ranks each group's runs by MBA and agrees with summary.tsv; Fig. 2c is drawn."""
    workdir, config = toy
    table = pd.read_csv(workdir / "results/summary_table.tsv", sep="\t")
    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t")
    for group, rows in table.groupby("group", sort=False):
        ranked = rows.mba_mean.dropna().to_numpy()
        assert (np.diff(ranked) <= 1e-12).all(), group
        ceiling = rows[rows.reported_as == "true_labels"]
        assert ceiling.mba_mean.iloc[0] == 1.0 and ceiling.n_seeds.iloc[0] == len(config["seeds"])
        pca = rows[(rows.reported_as == "pca") & (rows["index"] == "flat") & (rows.transfer == "majority")]
        expected = summary[(summary.group == group) & (summary.method == "pca") & (summary["index"] == "flat")
                           & (summary.transfer == "majority") & (summary.metric == "mba")].value.mean()
        assert pca.mba_mean.iloc[0] == pytest.approx(expected)
        assert pca.wall_s.iloc[0] > 0
    png = (workdir / "results/figures/mba_box.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def computed_runs(config):
    """(group, method, index, transfer, seed, reported_as) of every run that is not skipped."""
    return {r[:6] for r in expected_runs(config) if not r[6]}


def run_folder(workdir, config, group, method, index, transfer, seed):
    from cellquery.config import method_kind

    kind = "predictors" if method_kind(config, method) == "predictor" else "embeddings"
    return workdir / f"results/{group}/{kind}/{method}/seed{seed}/{index}/{transfer}"


def test_novel_types(toy):
    """results/novel_types.tsv: every run; rejected counts match its predictions; controls' ratios by construction."""
    workdir, config = toy
    from cellquery.novelty import TABLES

    table = pd.read_csv(workdir / "results/novel_types.tsv", sep="\t", keep_default_na=False, na_values=[""])
    assert list(table.columns) == TABLES["novel_types"]
    keys = ["group", "method", "index", "transfer", "seed", "reported_as"]
    assert set(map(tuple, table[keys].values.tolist())) == computed_runs(config)
    table["cluster"] = table["cluster"].astype(str)
    for run, rows in table.groupby(keys):
        predictions = pd.read_csv(run_folder(workdir, config, *run[:5]) / "predictions.tsv", sep="\t")
        rejected = predictions[predictions.prediction == "rejected"]
        everything = rows[rows.cluster == "all"].set_index("cell_type")
        assert (everything.cluster_cells == len(rejected)).all(), run
        counts = rejected.true_label.value_counts()
        for cell_type, row in everything.iterrows():
            assert row.n_cells == counts.get(cell_type, 0), (run, cell_type)
        clusters = rows[rows.cluster != "all"]
        if (rows.clustering == "leiden").all():  # the clusters partition the rejected cells
            assert clusters.drop_duplicates("cluster").cluster_cells.sum() == len(rejected), run
            assert clusters.n_cells.sum() == len(rejected), run
        else:
            assert clusters.empty, run
        if run[1] in ("true_labels", "reject_all"):
            assert (rows.clustering == "no embedding").all(), run
        negative = everything[everything.negative.astype(bool)]
        if run[1] == "true_labels":  # rejects exactly the negative types: each is enriched n_query / n_negative
            n_negative = predictions.true_label.isin(negative.index).sum()
            assert np.allclose(negative.enrichment, len(predictions) / n_negative), run
        if run[1] == "reject_all":  # rejects everything: every type at its query share
            assert np.allclose(everything.enrichment, 1.0), run
    bench = pd.read_csv(workdir / "results/benchmarks.tsv", sep="\t")
    assert "novelty" not in set(bench.rule)  # each run's metrics job writes its rejection analyses
    assert (bench.rule == "metrics").sum() == len(computed_runs(config))
    assert {f"{kind}_{name}" for kind in ("gather", "figure") for name in ("novel_types", "distance_roc", "hit_datasets")} <= set(bench.rule)
    png = (workdir / "results/figures/novel_types.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_distance_roc(toy):
    """results/distance_roc.tsv: AUCs of every run with an embedding, in the summary; recomputed for one run."""
    workdir, config = toy
    from sklearn.metrics import roc_auc_score

    aucs = pd.read_csv(workdir / "results/distance_roc.tsv", sep="\t")
    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t")
    keys = ["group", "method", "index", "transfer", "seed", "reported_as"]
    in_summary = summary[summary.metric.str.startswith("distance_auc_")]
    merged = aucs.merge(in_summary, on=keys + ["metric"], suffixes=("", "_summary"))
    assert len(merged) == len(aucs) == len(in_summary)
    assert np.allclose(merged.value, merged.value_summary, equal_nan=True)
    assert aucs.value.dropna().between(0, 1).all()
    runs = set(map(tuple, aucs[keys].values.tolist()))
    for run in computed_runs(config):
        controls = run[1] in ("true_labels", "reject_all", "majority_label", "random_labels")
        assert (run in runs) != controls, run  # every run with an embedding, no control
    metrics = aucs.groupby(keys).metric.apply(set)
    assert all({"distance_auc_euclidean", "distance_auc_normalised"} <= m for m in metrics)
    # pca / flat / majority on the simulated group: the Euclidean AUC of the nearest hit, recomputed
    model = workdir / "results/simulated/embeddings/pca/seed0/model0"
    reference, query = ad.read_h5ad(model / "reference_embedding.h5ad"), ad.read_h5ad(model / "query_embedding.h5ad")
    nearest = np.load(model / "flat/hits.npz")["indices"][:, 0]
    same = reference.obs["cell_type"].astype(str).to_numpy()[nearest] == query.obs["cell_type"].astype(str).to_numpy()
    distance = np.linalg.norm(query.obsm["X_emb"].astype(np.float64) - reference.obsm["X_emb"][nearest], axis=1)
    value = aucs.set_index(keys + ["metric"]).value
    expected = roc_auc_score(same, -distance)
    assert value[("simulated", "pca", "flat", "majority", 0, "pca", "distance_auc_euclidean")] == pytest.approx(expected)
    # exact search over three shards finds the same hits: the same AUCs
    for metric in ("distance_auc_euclidean", "distance_auc_normalised"):
        assert value[("simulated", "pca", "flat_sharded", "majority", 0, "pca", metric)] == pytest.approx(
            value[("simulated", "pca", "flat", "majority", 0, "pca", metric)], rel=1e-5)
    png = (workdir / "results/figures/distance_roc.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_hit_datasets(toy):
    """results/hit_datasets.tsv: the simulated group's two reference studies (one dataset) and a spatial group's two
    reference sections; pbmc68k has no units."""
    workdir, config = toy
    table = pd.read_csv(workdir / "results/hit_datasets.tsv", sep="\t")
    units = {"simulated": ("study", {"study1", "study2"})}  # pbmc68k: one dataset, no batch key
    for group, spec in config["groups"].items():
        if spec.get("spatial"):
            (dataset,) = spec["reference"]
            units[group] = (spec["spatial"]["section_key"], set(config["datasets"][dataset]["simulate_spatial"]["sections"]))
    assert set(table.group) == set(units)
    keys = ["group", "method", "index", "transfer", "seed", "reported_as"]
    for group, (unit_key, names) in units.items():
        mine = table[table.group == group]
        assert (mine.unit_key == unit_key).all() and set(mine.unit) == names, group
        reference = ad.read_h5ad(workdir / f"results/{group}/embeddings/pca/seed0/model0/reference_embedding.h5ad")
        for run, rows in mine.groupby(keys):
            assert len(rows) == 2 and rows.hit_fraction.sum() == pytest.approx(1.0), run
            assert rows.entropy.nunique() == 1 and 0.0 <= rows.entropy.iloc[0] <= 1.0, run
            if run[4] == 0:
                sizes = reference.obs[unit_key].astype(str).value_counts()
                assert rows.set_index("unit").n_reference.to_dict() == sizes.to_dict(), run
    with_units = {r for r in computed_runs(config) if r[0] in units}
    controls = {r for r in with_units if r[1] in ("true_labels", "reject_all", "majority_label", "random_labels")}
    assert set(map(tuple, table[keys].values.tolist())) == with_units - controls
    png = (workdir / "results/figures/hit_datasets.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def declared_resources(workdir, config_paths):
    """benchmark job -> (mem_mb, runtime in minutes) of every job of the configs, from a forced dry run."""
    out = snakemake(workdir, "-n", "--forceall", "--configfile", *map(str, config_paths)).stdout
    declared, benchmark = {}, None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("benchmark: results/benchmarks/"):
            benchmark = line.removeprefix("benchmark: results/benchmarks/").removesuffix(".tsv")
        elif line.startswith("resources:") and benchmark is not None:
            values = dict(item.strip().split("=", 1) for item in line.removeprefix("resources:").split(",") if "=" in item)
            declared[benchmark] = (float(values["mem_mb"]), float(values["runtime"]))
            benchmark = None
        elif line.startswith("rule "):
            benchmark = None
    return declared


def test_no_job_exceeds_its_declared_resources(toy):
    """Every toy job's measured peak memory and wall time lie within the mem_mb and runtime its rule declares."""
    workdir, config = toy
    declared = declared_resources(workdir, TOY_FILES)
    measured = pd.read_csv(workdir / "results/benchmarks.tsv", sep="\t").set_index("job")
    jobs = [job for job in measured.index if job in declared]
    assert len(jobs) >= 0.9 * len(measured)  # every job but gather_benchmarks' own and the skips' records
    over_memory = [(job, measured.max_rss_mb[job], declared[job][0]) for job in jobs if measured.max_rss_mb[job] > declared[job][0]]
    over_time = [(job, measured.wall_s[job], 60 * declared[job][1]) for job in jobs if measured.wall_s[job] > 60 * declared[job][1]]
    assert not over_memory, over_memory
    assert not over_time, over_time
