"""Job resources derived from measured runs (cellquery/resources.py, config/resources.tsv)."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cellquery.resources import declared, derive, job_key, main, plugin_of, read_table

REPO = Path(__file__).resolve().parents[1]
CONFIG = {"methods": {"cellblast_fast": {"predictor": "cellblast"}, "pca": {"embedding": "pca"},
                      "scvi": {"embedding": "scvi"}}}


def bench(rows):
    return pd.DataFrame(rows, columns=["rule", "job", "wall_s", "max_rss_mb", "cpu_s", "mean_load"])


def test_job_key_per_plugin_for_embed_and_predict():
    assert job_key("predict", "predict/simulated/cellblast_fast/seed0", CONFIG) == "predict:cellblast"
    assert job_key("embed", "embed/g/pca/seed1/model2", CONFIG) == "embed:pca"
    assert job_key("build_index", "build_index/g/pca/seed0/model0/flat/shard0", CONFIG) == "build_index"
    # a method of another config keeps the rule-level row
    assert job_key("predict", "predict/g/unknown/seed0", CONFIG) == "predict"
    assert plugin_of(CONFIG, "cellblast_fast") == "cellblast"


def test_derive_takes_the_peak_of_every_run_times_the_margin():
    first = bench([
        ("predict", "predict/g/cellblast_fast/seed0", 100.0, 1000.0, 90, 1),
        ("predict", "predict/g/cellblast_fast/seed1", 130.0, 900.0, 90, 1),
        ("build_index", "build_index/g/pca/seed0/model0/flat/shard0", 2.0, 120.0, 1, 1),
    ])
    second = bench([("predict", "predict/h/cellblast/seed0", 90.0, 1410.0, 90, 1)])
    table = derive([(first, CONFIG), (second, {"methods": {"cellblast": {"predictor": "cellblast"}}})], margin=1.5)
    rows = table.set_index("key")
    # peak RSS 1410 (second run) x 1.5 = 2115 -> 2200 MB; peak wall 130 s x 1.5 = 195 s -> 4 min -> floor 5
    assert rows.loc["predict:cellblast", ["mem_mb", "runtime", "jobs"]].tolist() == [2200, 5, 3]
    assert rows.loc["predict:cellblast", "peak_wall_s"] == 130.0
    # 120 MB x 1.5 = 180 -> the 500 MB floor
    assert rows.loc["build_index", ["mem_mb", "runtime"]].tolist() == [500, 5]
    assert rows.loc["default", ["mem_mb", "runtime"]].tolist() == [2000, 30]
    # a long job: 1000 s x 1.5 = 25 min exactly
    long = derive([(bench([("embed", "embed/g/scvi/seed0/model0", 1000.0, 700.0, 0, 1)]), CONFIG)], margin=1.5)
    assert long.set_index("key").loc["embed:scvi", ["mem_mb", "runtime"]].tolist() == [1100, 25]


def test_declared_falls_back_from_plugin_to_rule_to_default():
    table = {"predict:cellblast": {"mem_mb": 2100, "runtime": 46}, "predict": {"mem_mb": 900, "runtime": 9},
             "default": {"mem_mb": 2000, "runtime": 30}}
    assert declared(table, "predict", "cellblast") == {"mem_mb": 2100, "runtime": 46}
    assert declared(table, "predict", "ingest") == {"mem_mb": 900, "runtime": 9}
    assert declared(table, "novelty") == {"mem_mb": 2000, "runtime": 30}


def test_command_line_writes_a_table_the_workflow_reads(tmp_path):
    benchmarks = tmp_path / "benchmarks.tsv"
    bench([("embed", "embed/g/scvi/seed0/model0", 400.0, 800.0, 0, 1)]).to_csv(benchmarks, sep="\t", index=False)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    main([str(benchmarks), str(config), "-o", str(tmp_path / "resources.tsv")])
    table = read_table(tmp_path / "resources.tsv")
    assert table["embed:scvi"] == {"mem_mb": 1200, "runtime": 10}
    with pytest.raises(SystemExit):
        main([str(benchmarks), "-o", str(tmp_path / "x.tsv")])


def test_committed_table_measures_every_default_method():
    """config/resources.tsv has a measured row for every embedding and predictor of the default config."""
    table = read_table(REPO / "config/resources.tsv")
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    missing = []
    for method, spec in config["methods"].items():
        rule = "embed" if "embedding" in spec else "predict"
        if f"{rule}:{plugin_of(config, method)}" not in table:
            missing.append(method)
    assert not missing, f"no measured resources for {missing}: rerun python -m cellquery.resources"
