"""Fig. 2d by method (cellquery.bench.methods_scale): nested seeded subsamples, the mean +/- sd summary,
a tiny end-to-end run, and the caps that mark a run as not fitting."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from cellquery.bench.methods_scale import (
    BATCH_KEY,
    COLUMNS,
    LABEL_KEY,
    MethodsScaleSettings,
    job_limits,
    measure,
    plot_query_time,
    projected_cost,
    read_rows,
    run_capped,
    simulate_atlas,
    subsample,
    summarise,
)
from cellquery.errors import InputError
from cellquery.io import read_table, write_table


def sleeping_runner(atlas, query, genes, rows, spec, seed):
    """A stand-in method: sleeps ``spec['sleep_per_cell']`` seconds per reference cell."""
    time.sleep(spec["sleep_per_cell"] * len(rows))
    return {"train_s": 0.0, "query_s": 0.0, "total_s": 0.0}


def allocate(n_bytes: int) -> int:
    return int(np.ones(n_bytes, dtype=np.uint8).sum())


def test_subsample_is_seeded_nested_and_sorted():
    n = 1000
    small, large = subsample(n, 100, repeat=2, seed=5), subsample(n, 400, repeat=2, seed=5)
    assert np.array_equal(small, subsample(n, 100, repeat=2, seed=5))  # same call, same rows
    assert np.all(np.diff(small) > 0) and len(small) == 100 and small.max() < n  # sorted, distinct
    assert set(small) <= set(large)  # a repeat's references are nested over sizes
    # the first `size` of one permutation of the rows, drawn from (seed, repeat)
    order = np.random.default_rng([5, 2]).permutation(n)
    assert np.array_equal(large, np.sort(order[:400]))
    assert not np.array_equal(small, subsample(n, 100, repeat=3, seed=5))  # repeats differ
    assert np.array_equal(subsample(n, n, repeat=0), np.arange(n))
    with pytest.raises(InputError, match="1001"):
        subsample(n, 1001, repeat=0)


def test_read_rows_reads_x_layers_and_obs_of_those_rows(tmp_path):
    import anndata as ad
    import scipy.sparse as sp

    x = sp.random(50, 20, density=0.3, format="csr", dtype=np.float32, random_state=0)
    obs = pd.DataFrame({"cell_type": pd.Categorical(list("ab") * 25)}, index=[f"c{i}" for i in range(50)])
    ad.AnnData(X=x, obs=obs, layers={"counts": x * 2}).write_h5ad(tmp_path / "atlas.h5ad")
    rows = np.array([1, 4, 9, 30])
    part = read_rows(tmp_path / "atlas.h5ad", rows)
    assert isinstance(part.X, sp.csr_matrix) and isinstance(part.layers["counts"], sp.csr_matrix)
    assert (part.X != x[rows]).nnz == 0 and (part.layers["counts"] != x[rows] * 2).nnz == 0
    assert list(part.obs_names) == ["c1", "c4", "c9", "c30"] and list(part.obs["cell_type"]) == list("baba")


def test_summarise_against_a_hand_made_table():
    rows = [
        ("a", 100, 0, 1.0, 1.0, 2.5, 10.0, "ok"),
        ("a", 100, 1, 1.0, 2.0, 3.5, 12.0, "ok"),
        ("a", 100, 2, 1.0, 3.0, 4.5, 11.0, "ok"),
        ("a", 100, 3, np.nan, np.nan, np.nan, np.nan, "over_time"),  # not counted
        ("b", 100, 0, 0.5, 4.0, 5.0, 20.0, "ok"),  # one run: sd 0
        ("b", 1000, 0, np.nan, np.nan, np.nan, np.nan, "skipped"),
    ]
    table = pd.DataFrame([r + ("",) for r in rows], columns=COLUMNS)
    summary = summarise(table, n_query=50).set_index(["method", "size"])
    assert list(summary.index) == [("a", 100), ("b", 100)]
    a, b = summary.loc[("a", 100)], summary.loc[("b", 100)]
    assert a["n_ok"] == 3 and a["query_s_mean"] == pytest.approx(2.0) and a["query_s_sd"] == pytest.approx(1.0)
    assert a["total_s_mean"] == pytest.approx(3.5) and a["peak_rss_mb_max"] == 12.0
    assert a["cells_per_s"] == pytest.approx(25.0)  # 50 query cells / 2 s
    assert b["n_ok"] == 1 and b["query_s_sd"] == 0.0 and b["cells_per_s"] == pytest.approx(12.5)


def test_run_capped_marks_runs_past_the_caps():
    status, value, small = run_capped(allocate, (1000,), max_seconds=60)
    assert (status, value) == ("ok", 1000)
    # the peak RSS is the child's own: 400 MB more when it holds 400 MB, not the caller's size
    big = run_capped(allocate, (400 * 2**20,), max_seconds=60)[2]
    assert big - small >= 390
    status, reason, _ = run_capped(time.sleep, (30,), max_seconds=1)
    assert status == "over_time" and "1 s" in reason
    status, reason, _ = run_capped(allocate, (8 * 2**30,), max_seconds=60, max_memory_gb=2)
    assert status == "over_memory", reason


def test_a_method_that_does_not_fit_is_not_run_at_larger_sizes(tmp_path):
    settings = MethodsScaleSettings.from_config({"methods": {
        "sizes": [200, 400, 600], "repeats": 2, "n_query": 50, "n_genes": 500, "n_top_genes": 100, "max_seconds": 8,
        "methods": {"slow": {"kind": "own", "sleep_per_cell": 0.0}, "slower": {"kind": "own", "sleep_per_cell": 0.05}},
    }})
    # slow sleeps 0 s everywhere; slower 10 s at 200 cells (past the 8 s cap): over_time, then skipped.
    # The cap counts the child's start too (1.7 s here, over 2 s on a loaded 2-core CI machine), hence 8 s.
    table = measure(settings, workdir=tmp_path, runner=sleeping_runner)
    status = table.set_index(["method", "size", "repeat"])["status"]
    assert (status.loc["slow"] == "ok").all() and len(status.loc["slow"]) == 6
    assert status.loc[("slower", 200, 0)] == "over_time"
    assert (status.loc["slower"].drop((200, 0)) == "skipped").all()
    assert table.loc[table["status"] == "skipped", "reason"].eq("over_time at 200 cells").all()


def test_a_method_stops_above_its_max_size(tmp_path):
    settings = MethodsScaleSettings.from_config({"methods": {
        "sizes": [200, 400, 600], "repeats": 1, "n_query": 50, "n_genes": 500, "n_top_genes": 100,
        "methods": {"capped": {"kind": "own", "sleep_per_cell": 0.0, "max_size": 400}},
    }})
    table = measure(settings, workdir=tmp_path, runner=sleeping_runner).set_index("size")
    assert list(table["status"]) == ["ok", "ok", "skipped"] and table.loc[600, "reason"] == "above max_size 400"


def test_tiny_run_writes_the_table_and_figure(tmp_path):
    settings = MethodsScaleSettings.from_config({"methods": {
        "sizes": [200, 400], "repeats": 2, "n_query": 100, "n_genes": 500, "n_top_genes": 200,
        "methods": {"own": {"kind": "own"}, "ingest": {"predictor": "ingest"}},
    }})
    path = tmp_path / "methods.tsv"
    write_table(measure(settings, workdir=tmp_path), path)
    table = read_table(path, required=COLUMNS)
    assert list(table.columns) == COLUMNS
    keys = sorted(zip(table["method"], table["size"], table["repeat"]))
    assert keys == sorted((m, s, r) for m in ("own", "ingest") for s in (200, 400) for r in (0, 1))
    assert (table["status"] == "ok").all(), table[["method", "status", "reason"]]
    assert (table["query_s"] > 0).all() and (table["train_s"] > 0).all() and (table["peak_rss_mb"] > 0).all()
    assert (table["total_s"] >= table["query_s"]).all()
    summary = summarise(table, settings.n_query)
    assert len(summary) == 4 and (summary["n_ok"] == 2).all()
    figure = tmp_path / "figure.png"
    plot_query_time(summary, figure, settings.n_query)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_stacks_the_n_labels_of_near_points(tmp_path, monkeypatch):
    import cellquery.plots

    figures = []
    monkeypatch.setattr(cellquery.plots, "save_png", lambda fig, path: figures.append(fig))
    rows = [("a", 10, 4, 1.0), ("a", 100, 2, 30.0), ("b", 10, 4, 2.0), ("b", 100, 3, 32.0), ("c", 10, 4, 3.0),
            ("c", 100, 1, 0.5)]
    summary = pd.DataFrame([dict(method=m, size=n, n_ok=k, query_s_mean=q, query_s_sd=0.0) for m, n, k, q in rows])
    plot_query_time(summary, tmp_path / "f.png", 100)
    offsets = {t.get_text(): t.xyann for t in figures[0].axes[0].texts}
    # b (32 s) and a (30 s) lie within 0.15 decades: a's label goes one line lower; c (0.5 s) is far from both
    assert offsets == {"n=3": (5, -9), "n=2": (5, -18), "n=1": (5, -9)}


def test_config_needs_methods_of_one_kind():
    with pytest.raises(InputError, match="scale.methods.methods"):
        MethodsScaleSettings.from_config({"methods": {"methods": {}}})
    with pytest.raises(InputError, match="scale.methods.methods.x"):
        MethodsScaleSettings.from_config({"methods": {"methods": {"x": {"params": {}}}}})
    with pytest.raises(InputError, match="unknown key 'size'"):
        MethodsScaleSettings.from_config({"methods": {"size": [1], "methods": {"x": {"kind": "own"}}}})


def timed_sleeping_runner(atlas, query, genes, rows, spec, seed):
    """``sleeping_runner`` that reports the seconds it slept as its total."""
    start = time.perf_counter()
    sleeping_runner(atlas, query, genes, rows, spec, seed)
    return {"train_s": 0.0, "query_s": 0.0, "total_s": time.perf_counter() - start}


def test_projected_cost_is_the_line_through_the_two_largest_sizes():
    assert projected_cost([(100, 5.0)], 1000) is None
    # (1000, 10) and (10000, 100): slope 0.01 s/cell -> 100 + 0.01 * 90000 at 10^5
    assert projected_cost([(10, 1.0), (1000, 10.0), (10000, 100.0)], 100000) == pytest.approx(1000.0)
    assert projected_cost([(1000, 10.0), (10000, 8.0)], 100000) == pytest.approx(8.0)  # slope clipped at 0


def test_a_size_projected_past_the_cap_is_skipped_without_running(tmp_path):
    settings = MethodsScaleSettings.from_config({"methods": {
        "sizes": [100, 200, 2000], "repeats": 1, "n_query": 50, "n_genes": 500, "n_top_genes": 100,
        "max_seconds": 8, "methods": {"linear": {"kind": "own", "sleep_per_cell": 0.005}},
    }})
    # 0.5 s at 100 cells, 1 s at 200: 1 + 0.005 * 1800 = 10 s at 2000 (> 8 s), so 2000 is not run.
    # The cap also counts the child's start (importing the bench: 1.7 s here, twice that on a loaded
    # CI machine), hence 8 s.
    table = measure(settings, workdir=tmp_path, runner=timed_sleeping_runner).set_index("size")
    assert list(table["status"]) == ["ok", "ok", "skipped"]
    reason = table.loc[2000, "reason"]
    assert reason.startswith("projected 10 s at 2000 cells") and "max_seconds 8" in reason, reason
    # without the projection the run is made and killed at the cap
    unprojected = MethodsScaleSettings.from_config({"methods": {**settings.__dict__, "project_limits": False,
                                                                "sizes": [100, 200, 2000], "studies": ["study1"]}})
    table = measure(unprojected, workdir=tmp_path, runner=timed_sleeping_runner).set_index("size")
    assert list(table["status"]) == ["ok", "ok", "over_time"]


def test_read_rows_restricted_to_genes_in_spans(tmp_path):
    import anndata as ad
    import scipy.sparse as sp

    x = sp.random(60, 12, density=0.4, format="csr", dtype=np.float32, random_state=1)
    var = pd.DataFrame(index=[f"g{j}" for j in range(12)])
    obs = pd.DataFrame(index=[f"c{i}" for i in range(60)])
    ad.AnnData(X=x, obs=obs, var=var, layers={"counts": x * 3}).write_h5ad(tmp_path / "a.h5ad")
    # spans of 4 selected rows: the first two spans are read as blocks, the sparse tail row by row
    rows = np.array([0, 1, 2, 3, 5, 6, 7, 9, 20, 40, 50, 59])
    genes = ["g7", "g0", "g3"]
    part = read_rows(tmp_path / "a.h5ad", rows, genes=genes, layers=False, chunk_rows=4)
    assert isinstance(part.X, sp.csr_matrix) and not part.layers.keys()
    assert np.array_equal(part.X.toarray(), x[rows][:, [7, 0, 3]].toarray())
    assert list(part.var_names) == genes and list(part.obs_names) == [f"c{i}" for i in rows]
    whole = read_rows(tmp_path / "a.h5ad", rows, chunk_rows=5)
    assert np.array_equal(whole.layers["counts"].toarray(), (x[rows] * 3).toarray())
    with pytest.raises(InputError, match="genes asked for are missing"):
        read_rows(tmp_path / "a.h5ad", rows, genes=["g1", "nope"])


def test_a_chunked_atlas_holds_the_in_memory_atlas(tmp_path):
    """Above backed_above_cells the atlas is written by the chunked path: the same cells, values and HVGs."""
    import anndata as ad

    spec = {"sizes": [300], "repeats": 1, "n_query": 80, "n_genes": 500, "n_top_genes": 60,
            "methods": {"own": {"kind": "own"}}}
    in_memory = simulate_atlas(MethodsScaleSettings.from_config({"methods": spec}), tmp_path / "memory")
    chunked = simulate_atlas(MethodsScaleSettings.from_config({"methods": {**spec, "backed_above_cells": 100}}),
                             tmp_path / "chunked")
    assert chunked[2] == in_memory[2]  # the same HVGs
    for a_path, b_path in zip(in_memory[:2], chunked[:2]):
        a, b = ad.read_h5ad(a_path), ad.read_h5ad(b_path)
        assert "chunked" in b.uns and a.shape == b.shape
        assert list(a.obs[LABEL_KEY]) == list(b.obs[LABEL_KEY]) and list(a.obs[BATCH_KEY]) == list(b.obs[BATCH_KEY])
        np.testing.assert_allclose(b.X.toarray(), a.X.toarray(), rtol=1e-5, atol=1e-6)
        assert (a.layers["counts"] != b.layers["counts"]).nnz == 0


def test_own_path_on_a_pca_subsample_and_an_ivf_index(tmp_path):
    """The own path with its PCA fitted on a subsample and the ivf_gemm index's list-by-list self-search."""
    settings = MethodsScaleSettings.from_config({"methods": {
        "sizes": [300], "repeats": 1, "n_query": 100, "n_genes": 500, "n_top_genes": 100,
        "methods": {"own_ivf": {"kind": "own", "fit_cells": 150, "index": "ivf_gemm", "index_params": {"nlist": 8}}},
    }})
    table = measure(settings, workdir=tmp_path)
    assert (table["status"] == "ok").all(), table[["status", "reason"]]
    assert (table["query_s"] > 0).all() and (table["train_s"] > 0).all()


def test_job_limits_cover_every_run_at_the_caps():
    settings = MethodsScaleSettings.from_config({"methods": {
        "sizes": [10, 100, 1000], "repeats": 4, "max_seconds": 600, "max_memory_gb": 8,
        "max_repeats": {"slow": 1}, "methods": {"fast": {"kind": "own"}, "slow": {"predictor": "ingest"}},
    }})
    # 3 sizes x 4 repeats x (600 s + 60 s) = 132 min; one repeat: 33 min; 8 GB + 1 GB
    assert job_limits(settings, "fast") == {"runtime": 132, "mem_mb": 9216}
    assert job_limits(settings, "slow") == {"runtime": 33, "mem_mb": 9216}
    # a budget of 1,000 s: the budget and one run past it, 1,000 + 660 s = 28 min (below the 132 min of all runs)
    budgeted = MethodsScaleSettings.from_config({"methods": {**settings.__dict__, "budget_s": 1000,
                                                             "sizes": [10, 100, 1000], "studies": ["study1"]}})
    assert job_limits(budgeted, "fast") == {"runtime": 28, "mem_mb": 9216}


def test_a_method_stops_where_its_budget_would_be_passed(tmp_path):
    from cellquery.bench.methods_scale import run_estimate

    assert run_estimate([], [], 100) == 0.0
    assert run_estimate([(50, 0.5, 1.0)], [], 100) == 0.5  # the largest size below
    assert run_estimate([(50, 0.5, 1.0), (100, 1.0, 1.0)], [], 200) == pytest.approx(2.0)  # the line
    assert run_estimate([(50, 0.5, 1.0), (100, 1.0, 1.0)], [2.5, np.nan], 200) == 2.5  # the runs there
    settings = MethodsScaleSettings.from_config({"methods": {
        "sizes": [50, 100, 200], "repeats": 2, "n_query": 50, "n_genes": 500, "n_top_genes": 100,
        "methods": {"linear": {"kind": "own", "sleep_per_cell": 0.01, "budget_s": 5.5},
                    "free": {"kind": "own", "sleep_per_cell": 0.0}},
    }})
    # runs of 0.5, 0.5, 1, 1 s, then 2 s at 200 cells (the line): 5 s spent; the next (2 s) would pass 5.5
    table = measure(settings, workdir=tmp_path, runner=timed_sleeping_runner)
    linear = table[table["method"] == "linear"].set_index(["size", "repeat"])
    assert list(linear["status"]) == ["ok"] * 5 + ["skipped"]
    assert linear.loc[(200, 1), "reason"].startswith("budget_s 5.5 spent: 5 s of runs, the next estimated at 2 s")
    assert (table.loc[table["method"] == "free", "status"] == "ok").all()  # no budget of its own, none in all


def failing_runner(atlas, query, genes, rows, spec, seed):
    time.sleep(0.5)
    raise RuntimeError("no luck")


def test_a_failed_run_counts_its_wall_time_against_the_budget(tmp_path):
    settings = MethodsScaleSettings.from_config({"methods": {
        "sizes": [50, 100], "repeats": 2, "n_query": 50, "n_genes": 500, "n_top_genes": 100, "budget_s": 0.5,
        "warmup": False, "methods": {"m": {"kind": "own"}},
    }})
    # the first run fails after > 0.5 s of wall time (its sleep and the child's start): nothing more starts
    table = measure(settings, workdir=tmp_path, runner=failing_runner)
    assert list(table["status"]) == ["failed", "skipped", "skipped", "skipped"], table
    assert "no luck" in table["reason"].iloc[0] and table["reason"].iloc[1].startswith("budget_s 0.5 spent")


def logging_runner(atlas, query, genes, rows, spec, seed):
    """``sleeping_runner`` that leaves a line (reference size, seed) in ``spec['runs']`` for every run it makes."""
    with open(spec["runs"], "a") as handle:
        handle.write(f"{len(rows)} {seed}\n")
    return {"train_s": 0.0, "query_s": len(rows) / 1000, "total_s": 1.0}


def test_an_interrupted_job_resumes_with_the_runs_it_finished(tmp_path):
    from cellquery.bench.methods_scale import measure_method_to_file, resume_key

    runs = tmp_path / "runs.txt"
    scale = {"methods": {"sizes": [100, 200], "repeats": 2, "n_query": 50, "n_genes": 500, "n_top_genes": 50,
                         "methods": {"m": {"kind": "own", "runs": str(runs)}}}}
    atlas, query, genes = simulate_atlas(MethodsScaleSettings.from_config(scale), tmp_path)
    genes_path = tmp_path / "genes.tsv"
    write_table(pd.DataFrame({"gene": genes}), genes_path)
    out = tmp_path / "m.tsv"
    measure_method_to_file(scale, "m", atlas, query, genes_path, out, runner=logging_runner)
    full = read_table(out, required=COLUMNS)
    # an untimed warm-up run at the smallest size (repeat 0's cells), then the four timed runs
    assert runs.read_text().split("\n")[:-1] == ["100 0", "100 0", "100 1", "200 0", "200 1"]
    assert len(full) == 4
    assert not out.with_suffix(".partial.tsv").exists() and not out.with_suffix(".partial.json").exists()

    # a job killed after its third run left three rows and the key; the next job runs only the fourth
    partial, key = out.with_suffix(".partial.tsv"), out.with_suffix(".partial.json")
    earlier = full.iloc[:3].copy()
    earlier.loc[2, "query_s"] = 7.5  # the kept rows are taken as they stand, not run again
    write_table(earlier, partial)
    key.write_text(json.dumps(resume_key(scale, "m", atlas, query)))
    runs.write_text("")
    measure_method_to_file(scale, "m", atlas, query, genes_path, out, runner=logging_runner)
    assert runs.read_text() == "100 0\n200 1\n"  # the warm-up, then the one run left
    table = read_table(out, required=COLUMNS)
    assert list(table["query_s"]) == [0.1, 0.1, 7.5, 0.2] and (table["status"] == "ok").all()

    # under another key (another seed) every run is made again
    write_table(earlier, partial)
    key.write_text(json.dumps(resume_key(scale, "m", atlas, query)))
    runs.write_text("")
    measure_method_to_file({"methods": {**scale["methods"], "seed": 3}}, "m", atlas, query, genes_path, out,
                           runner=logging_runner)
    assert runs.read_text().split("\n")[:-1] == ["100 3", "100 3", "100 4", "200 3", "200 4"]
    # without the warm-up, only the timed runs
    runs.write_text("")
    measure_method_to_file({"methods": {**scale["methods"], "warmup": False}}, "m", atlas, query, genes_path, out,
                           runner=logging_runner)
    assert runs.read_text().split("\n")[:-1] == ["100 0", "100 1", "200 0", "200 1"]
