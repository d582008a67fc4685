"""The summary table for people: benchmark job paths, means and sds over seeds, wall time and memory per run."""

import math

import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.summary import (
    BENCHMARK_COLUMNS, JOB_PATHS, SUMMARY_COLUMNS, TABLE_COLUMNS, format_summary_table, formatted_table, parse_job, run_jobs,
    summary_table,
)

NAN = float("nan")


@pytest.mark.parametrize(
    "job, expected",
    [
        ("predict/simulated/cellblast/seed0", {"group": "simulated", "method": "cellblast", "seed": 0}),
        ("embed/simulated/pca/seed0/model0", {"group": "simulated", "method": "pca", "seed": 0, "model": 0}),
        ("build_index/simulated/pca/seed1/model2/flat/shard3",
         {"group": "simulated", "method": "pca", "seed": 1, "model": 2, "index": "flat", "shard": 3}),
        ("query_index/simulated/pca/seed0/model0/flat_sharded/shard12",
         {"group": "simulated", "method": "pca", "seed": 0, "model": 0, "index": "flat_sharded", "shard": 12}),
        ("merge_hits/simulated/pca/seed0/model0/flat", {"group": "simulated", "method": "pca", "seed": 0, "model": 0, "index": "flat"}),
        ("transfer/simulated/pca/seed0/flat/majority",
         {"group": "simulated", "method": "pca", "seed": 0, "index": "flat", "transfer": "majority"}),
        ("metrics/simulated/embeddings/pca/seed0/flat/majority",
         {"group": "simulated", "kind": "embeddings", "method": "pca", "seed": 0, "index": "flat", "transfer": "majority"}),
        ("embedding_metrics/simulated/embeddings/pca/seed0", {"group": "simulated", "kind": "embeddings", "method": "pca", "seed": 0}),
        ("record_skip/pbmc68k/scanvi/seed1/native/native",
         {"group": "pbmc68k", "method": "scanvi", "seed": 1, "index": "native", "transfer": "native"}),
        ("load_dataset/sim_reference", {"dataset": "sim_reference"}),
        ("preprocess/simulated/seed0", {"group": "simulated", "seed": 0}),
        ("hvg/simulated/seed1", {"group": "simulated", "seed": 1}),
        ("aggregate", {}),
        ("figure_mba", {}),
        ("scale/flat/n1000", {}),
    ],
)
def test_parse_job(job, expected):
    assert parse_job(job) == {"rule": job.split("/")[0], **expected}


def test_job_paths_are_the_rules_benchmark_paths():
    import re
    from pathlib import Path

    rules = Path(__file__).resolve().parents[1] / "rules"
    declared = set(re.findall(r'"results/benchmarks/([^"]+)\.tsv"', "".join(p.read_text() for p in rules.glob("*.smk"))))
    assert set(JOB_PATHS.values()) <= declared


@pytest.mark.parametrize("job", ["embed/simulated/pca/seed0", "predict/simulated/cellblast/seedX", "transfer/g/pca/seed0/flat"])
def test_parse_job_names_a_path_that_drifted(job):
    with pytest.raises(InputError, match="does not match the .* benchmark path"):
        parse_job(job)


def summary_rows():
    runs = {  # (group, method, index, transfer, reported_as): {seed: {metric: value}}
        ("g1", "pca", "flat", "majority", "pca"): {
            0: {"mba": 0.8, "mba_positive": 0.9, "mba_negative": 0.7, "map": 0.5, "jsd": 0.1, "rejected_fraction": 0.2},
            1: {"mba": 0.6, "mba_positive": 0.7, "mba_negative": 0.5, "map": 0.7, "rejected_fraction": 0.3},
        },
        ("g1", "pca", "flat", "calibrated", "calibrated-pca"): {0: {"mba": 0.9}},
        ("g1", "pca", "flat", "consensus", "consensus-pca"): {0: {"mba": 0.75}},
        ("g1", "pca", "ivfpq", "majority", "pca"): {0: {"mba": 0.1}},
        ("g1", "cellblast", "native", "native", "cellblast"): {0: {"mba": 0.5}, 1: {"mba": 0.7}},
        ("g1", "scanvi", "native", "native", "scanvi"): {0: {"skipped: needs raw counts": NAN}, 1: {"skipped: needs raw counts": NAN}},
        ("g2", "pca", "flat", "majority", "pca"): {0: {"mba": 0.4, "mba_positive": 0.4, "mba_negative": NAN}},
    }
    rows = [
        {"group": g, "method": m, "index": i, "transfer": t, "seed": seed, "reported_as": r, "metric": metric, "value": value}
        for (g, m, i, t, r), seeds in runs.items() for seed, metrics in seeds.items() for metric, value in metrics.items()
    ]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def benchmark_rows():
    jobs = [  # (job, wall_s, max_rss_mb)
        ("embed/g1/pca/seed0/model0", 10, 100), ("embed/g1/pca/seed0/model1", 11, 300), ("embed/g1/pca/seed0/model2", 12, 120),
        ("embed/g1/pca/seed1/model0", 20, 150),
        ("build_index/g1/pca/seed0/model0/flat/shard0", 1, 50), ("build_index/g1/pca/seed0/model0/flat/shard1", 2, 60),
        ("build_index/g1/pca/seed0/model1/flat/shard0", 3, 10), ("build_index/g1/pca/seed0/model2/flat/shard0", 4, 10),
        ("build_index/g1/pca/seed1/model0/flat/shard0", 5, 10),
        ("build_index/g1/pca/seed0/model0/ivfpq/shard0", 100, 10),
        ("query_index/g1/pca/seed0/model0/flat/shard0", 0.5, 10), ("query_index/g1/pca/seed0/model1/flat/shard0", 0.5, 10),
        ("query_index/g1/pca/seed0/model2/flat/shard0", 0.5, 10), ("query_index/g1/pca/seed1/model0/flat/shard0", 0.5, 10),
        ("query_index/g1/pca/seed0/model0/ivfpq/shard0", 0.5, 10),
        ("merge_hits/g1/pca/seed0/model0/flat", 0.25, 10), ("merge_hits/g1/pca/seed0/model1/flat", 0.25, 10),
        ("merge_hits/g1/pca/seed0/model2/flat", 0.25, 10), ("merge_hits/g1/pca/seed1/model0/flat", 0.25, 10),
        ("merge_hits/g1/pca/seed0/model0/ivfpq", 0.25, 10),
        ("transfer/g1/pca/seed0/flat/majority", 2, 400), ("transfer/g1/pca/seed1/flat/majority", 4, 90),
        ("transfer/g1/pca/seed0/flat/calibrated", 3, 80), ("transfer/g1/pca/seed0/flat/consensus", 6, 80),
        ("transfer/g1/pca/seed0/ivfpq/majority", 0.25, 10),
        # Snakemake's repeat: two rows of one job count once (mean wall time, largest RSS)
        ("predict/g1/cellblast/seed0", 30, 2000), ("predict/g1/cellblast/seed1", 50, 2500), ("predict/g1/cellblast/seed1", 70, 2600),
        # not a run's own cost: scoring, skips, shared steps
        ("metrics/g1/embeddings/pca/seed0/flat/majority", 1000, 9000), ("embedding_metrics/g1/embeddings/pca/seed0", 1000, 9000),
        ("metrics/g1/predictors/cellblast/seed0/native/native", 1000, 9000),
        ("record_skip/g1/scanvi/seed0/native/native", 1000, 9000), ("load_dataset/d1", 1000, 9000),
        ("preprocess/g1/seed0", 1000, 9000), ("hvg/g1/seed0", 1000, 9000), ("aggregate", 1000, 9000),
    ]
    rows = [{"rule": job.split("/")[0], "job": job, "wall_s": s, "max_rss_mb": m, "cpu_s": s, "mean_load": 90.0} for job, s, m in jobs]
    return pd.DataFrame(rows, columns=BENCHMARK_COLUMNS)


@pytest.fixture(scope="module")
def table():
    return summary_table(summary_rows(), benchmark_rows(), n_models={"consensus": 3, "calibrated": 1})


def row(table, group, name, index="flat"):
    rows = table[(table["group"] == group) & (table["reported_as"] == name) & (table["index"] == index)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_columns_and_ranking(table):
    assert list(table.columns) == TABLE_COLUMNS
    shown = list(zip(table["group"], table["reported_as"], table["index"]))
    assert shown == [
        ("g1", "calibrated-pca", "flat"), ("g1", "consensus-pca", "flat"), ("g1", "pca", "flat"), ("g1", "cellblast", "native"),
        ("g1", "pca", "ivfpq"), ("g1", "scanvi", "native"), ("g2", "pca", "flat"),
    ]


def test_means_and_sds_over_seeds(table):
    pca = row(table, "g1", "pca")
    assert pca["n_seeds"] == 2
    assert pca["mba_mean"] == pytest.approx(0.7) and pca["mba_sd"] == pytest.approx(math.sqrt(0.02))  # ddof 1
    assert pca["mba_positive_mean"] == pytest.approx(0.8) and pca["mba_negative_mean"] == pytest.approx(0.6)
    assert pca["map_mean"] == pytest.approx(0.6) and pca["map_sd"] == pytest.approx(math.sqrt(0.02))
    assert pca["jsd_mean"] == pytest.approx(0.1) and np.isnan(pca["jsd_sd"])  # one seed has it: no sd
    assert np.isnan(pca["accuracy_mean"]) and np.isnan(pca["cl_accuracy_mean"]) and pd.isna(pca["skipped"])
    calibrated = row(table, "g1", "calibrated-pca")
    assert calibrated["n_seeds"] == 1 and calibrated["mba_mean"] == 0.9 and np.isnan(calibrated["mba_sd"])
    g2 = row(table, "g2", "pca")
    assert g2["mba_positive_mean"] == 0.4 and np.isnan(g2["mba_negative_mean"])  # no negative types: stays NaN


def test_skipped_run(table):
    scanvi = row(table, "g1", "scanvi", "native")
    assert scanvi["skipped"] == "needs raw counts" and scanvi["n_seeds"] == 0
    assert np.isnan(scanvi[[c for c in TABLE_COLUMNS if c.endswith(("_mean", "_sd"))] + ["wall_s", "max_rss_mb"]].astype(float)).all()


def test_wall_time_and_memory_of_a_run_own_jobs(table):
    # seed 0: embed 10 + build 1 + 2 + query 0.5 + merge 0.25 + transfer 2; seed 1: 20 + 5 + 0.5 + 0.25 + 4
    pca = row(table, "g1", "pca")
    assert pca["wall_s"] == pytest.approx((15.75 + 29.75) / 2) and pca["max_rss_mb"] == 400
    # the same model-0 embedding and index jobs, its own transfer
    assert row(table, "g1", "calibrated-pca")["wall_s"] == pytest.approx(16.75)
    # ivfpq: the shared embed job, its own index jobs and transfer
    ivfpq = row(table, "g1", "pca", "ivfpq")
    assert ivfpq["wall_s"] == pytest.approx(10 + 100 + 0.5 + 0.25 + 0.25) and ivfpq["max_rss_mb"] == 100
    # consensus combines models 0, 1 and 2: embed 33 + build 10 + query 1.5 + merge 0.75 + transfer 6
    consensus = row(table, "g1", "consensus-pca")
    assert consensus["wall_s"] == pytest.approx(51.25) and consensus["max_rss_mb"] == 300
    # a predictor: its predict job (seed 1's two repeats count as one: mean 60 s, largest RSS 2600 MB)
    cellblast = row(table, "g1", "cellblast", "native")
    assert cellblast["wall_s"] == pytest.approx(45.0) and cellblast["max_rss_mb"] == 2600
    assert np.isnan(row(table, "g2", "pca")["wall_s"])  # no benchmarks for the group


def test_model_zero_only_without_n_models():
    table = summary_table(summary_rows(), benchmark_rows())
    assert row(table, "g1", "consensus-pca")["wall_s"] == pytest.approx(10 + 3 + 0.5 + 0.25 + 6)


def test_run_jobs_lists_each_run_jobs():
    runs = pd.DataFrame([{"group": "g1", "reported_as": "cellblast", "method": "cellblast", "index": "native",
                          "transfer": "native", "seed": 1}])
    jobs = run_jobs(runs, benchmark_rows())
    assert jobs["job"].tolist() == ["predict/g1/cellblast/seed1"] and jobs["wall_s"].tolist() == [60.0]


def test_empty_benchmarks_and_all_skipped():
    summary = summary_rows()
    table = summary_table(summary, pd.DataFrame(columns=BENCHMARK_COLUMNS))
    assert table["wall_s"].isna().all() and len(table) == 7
    skipped = summary_table(summary[summary["method"] == "scanvi"], benchmark_rows())
    assert skipped["skipped"].tolist() == ["needs raw counts"] and skipped["n_seeds"].tolist() == [0]


def test_formatted_for_people(table):
    shown = formatted_table(table).set_index(["group", "method", "index"])
    assert shown.loc[("g1", "pca", "flat"), "MBA"] == "0.700 ± 0.141"
    assert shown.loc[("g1", "pca", "flat"), "JSD (lower is better)"] == "0.100"  # one seed: the mean alone
    assert shown.loc[("g1", "calibrated-pca", "flat"), "MAP"] == "–"
    assert shown.loc[("g1", "cellblast", "native"), "wall time (s)"] == "45.0"
    assert shown.loc[("g1", "cellblast", "native"), "peak memory (MB)"] == "2600"
    assert shown.loc[("g1", "scanvi", "native"), "skipped"] == "needs raw counts"
    assert "accuracy" not in shown.columns and "CL accuracy" not in shown.columns  # no run has them


def test_markdown(table):
    text = format_summary_table(table)
    assert text.startswith("## g1\n\n| method | index | transfer | seeds | MBA (positive types) |")
    assert "\n## g2\n" in text
    assert "| pca | flat | majority | 2 | 0.800 ± 0.141 | 0.600 ± 0.141 | 0.700 ± 0.141 | 0.600 ± 0.141 | 0.100 | 22.8 | 400 |  |" in text
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len({line.count(" | ") for line in lines if "---" not in line}) == 1  # every row has every column
    assert format_summary_table(summary_table(pd.DataFrame(columns=SUMMARY_COLUMNS), benchmark_rows())) == "No runs.\n"


def test_workflow_script(tmp_path, run_workflow_script):
    from types import SimpleNamespace

    from cellquery.io import read_table

    summary_rows().to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    benchmark_rows().to_csv(tmp_path / "benchmarks.tsv", sep="\t", index=False)
    snakemake = SimpleNamespace(
        input=SimpleNamespace(summary=tmp_path / "summary.tsv", benchmarks=tmp_path / "benchmarks.tsv"),
        output=SimpleNamespace(table=tmp_path / "out/table.tsv", markdown=tmp_path / "out/table.md"),
        params=SimpleNamespace(transfers={"majority": {"voter": "majority"}, "consensus": {
            "voter": "majority", "significance": {"p_cutoff": 0.02, "models": 3}}}),
        log=[tmp_path / "log.txt"],
    )
    run_workflow_script("summary_table.py", snakemake)
    written = read_table(tmp_path / "out/table.tsv")
    assert list(written.columns) == TABLE_COLUMNS
    consensus = written[written["reported_as"] == "consensus-pca"].iloc[0]
    assert consensus["wall_s"] == pytest.approx(51.25)  # three models, from the config's transfer
    assert (tmp_path / "out/table.md").read_text() == format_summary_table(
        summary_table(summary_rows(), benchmark_rows(), n_models={"consensus": 3}))
