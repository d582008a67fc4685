"""Bad input never costs a run: each case through the real entry point (``snakemake -c1`` on a tiny config).

Every bad case must fail before any expensive job, print one line naming the
user's file (or dataset) and the field on the console, and leave no summary
and no output of the bad group under results/. The valid-but-unusual inputs
(no negative types in the query, a one-type reference, integer labels, dense
float64 X, one batch, fewer cells than n_comps) run to a correct summary, and
the same run killed with kill -9 and resumed (--unlock, --rerun-incomplete)
gives a byte-identical summary. The runs go two at a time (one core each).
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600
# snakemake processes at a time (each -c1); CQ_BAD_INPUT_WORKERS=1 on a busy machine
WORKERS = int(os.environ.get("CQ_BAD_INPUT_WORKERS", "2"))
CL = {"A": "CL:0000236", "B": "CL:0000623", "C": "CL:0000576", "D": "CL:0000084"}  # B cell, NK cell, monocyte, T cell
N_GENES = 80


def make(n: int, types, *, seed: int, batches=("b1", "b2"), genes: int = N_GENES) -> ad.AnnData:
    """Counts of ``n`` cells (types in turn), each type with its own 10 marker genes; labels, batches, CL ids, fates."""
    rng = np.random.default_rng(seed)
    labels = [types[i % len(types)] for i in range(n)]
    means = np.ones((n, genes))
    for i, label in enumerate(labels):
        block = "ABCD".index(str(label)[0]) if str(label)[0] in "ABCD" else int(label) % 4
        means[i, 10 * block : 10 * block + 10] = 8.0
    fate_a = rng.uniform(0, 1, n)
    obs = pd.DataFrame(
        {
            "cell_type": labels,
            "batch": [batches[i % len(batches)] for i in range(n)],
            "cl": [CL.get(str(t), "CL:0000236") for t in labels],
            "fate_a": fate_a,
            "fate_b": 1.0 - fate_a,
        },
        index=[f"cell{i}" for i in range(n)],
    )
    x = sp.csr_matrix(rng.poisson(means).astype(np.float32))
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"gene{j}" for j in range(genes)]))


def base_config() -> dict:
    return {
        "datasets": {
            "ref": {"source": "ref.h5ad", "values": "counts"},
            "qry": {"source": "qry.h5ad", "values": "counts"},
        },
        "groups": {
            "g": {
                "reference": ["ref"],
                "query": ["qry"],
                "label_key": "cell_type",
                "batch_keys": ["batch"],
                "ontology_key": "cl",
                "continuous_keys": ["fate_a", "fate_b"],
            }
        },
        "preprocess": {"min_genes": 5},
        "hvg": {"n_top_genes": 50},
        "methods": {"pca": {"embedding": "pca", "params": {"n_comps": 5}}},
        "indexes": {"flat": {"backend": "faiss", "params": {"factory": "Flat"}}},
        "transfers": {"majority": {"voter": "majority", "min_hits": 2, "min_fraction": 0.5, "distance_quantile": 0.95}},
        "k": 5,
        "seeds": [0],
        "integration_metrics": False,
    }


@dataclass
class Case:
    """A bad input: ``change(workdir, config, reference, query)`` edits the files or the config.

    ``line``: text expected in one line of the console output (a regular
    expression when ``regex``, for cases where either of two files may be
    checked first).
    """

    id: str
    change: Callable
    line: str
    regex: bool = False


def write(adata: ad.AnnData, path: Path) -> None:
    adata.write_h5ad(path)


def _set(path, value):
    def change(d, config, ref, qry):
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value(d) if callable(value) else value

    return change


def _ref(edit):
    def change(d, config, ref, qry):
        edit(ref)

    return change


def _x(edit, which="ref"):
    """Edit the dense X of the reference (or query) and store it back."""

    def change(d, config, ref, qry):
        adata = ref if which == "ref" else qry
        x = adata.X.toarray()
        edit(x)
        adata.X = x

    return change


def _dup_obs(ref):
    ref.obs_names = ["cell0", "cell1", "cell1", *ref.obs_names[3:]]


def _dup_var(ref):
    ref.var_names = ["gene0", "gene0", *ref.var_names[2:]]


def _nan_last_row(x):
    x[-1, -1] = np.nan


def _negative(x):
    x[5, 2] = -1.0


def _tpm(x):
    x *= 1e6 / np.maximum(x.sum(axis=1, keepdims=True), 1)


def _missing(column, rows):
    def edit(ref):
        ref.obs[column] = ref.obs[column].astype(object)
        ref.obs.iloc[rows, ref.obs.columns.get_loc(column)] = None

    return edit


def _obs(column, rows, value):
    def edit(ref):
        ref.obs.iloc[rows, ref.obs.columns.get_loc(column)] = value

    return edit


def _log_normalised_counts(d, config, ref, qry):
    for name in ("ref", "qry"):
        config["datasets"][name]["values"] = "log-normalised"
    ref.X = ref.X * 20  # raw counts up to hundreds, declared log-normalised
    qry.X = sp.csr_matrix(np.log1p(qry.X.toarray()))


def _corrupt(d, config, ref, qry):
    config["datasets"]["ref"]["source"] = "broken.h5ad"
    (d / "broken.h5ad").write_bytes(b"this is not an HDF5 file")


def _file_url(checksum):
    def change(d, config, ref, qry):
        write(ref, d / "remote.h5ad")
        spec = {"source": (d / "remote.h5ad").as_uri(), "values": "counts"}
        if checksum:
            spec["sha256"] = checksum
        config["datasets"]["ref"] = spec

    return change


def _same_source(part, common=None, **split):
    def change(d, config, ref, qry):
        common_ = {"label_key": "cell_type", "fraction": 0.5, "seed": 0, **(common or {})}
        config["datasets"]["ref"]["split"] = {**common_, "part": 1}
        config["datasets"]["qry"] = {"source": "ref.h5ad", "values": "counts", "split": {**common_, **split, "part": part}}

    return change


def _genes_renamed(d, config, ref, qry):
    qry.var_names = [f"ENSG{j:011d}" for j in range(qry.n_vars)]


def _empty(d, config, ref, qry):
    config["datasets"]["ref"]["source"] = "empty.h5ad"
    write(ref[:0].copy(), d / "empty.h5ad")


def _local_sha(d, config, ref, qry):
    config["datasets"]["ref"]["sha256"] = "0" * 64


REF = "ref.h5ad (dataset ref)"
QRY = "qry.h5ad (dataset qry)"
CASES = [
    # the config alone (main process, before any job)
    Case("http_url", _set(["datasets", "ref", "source"], "http://example.org/ref.h5ad"),
         "config: datasets.ref.source: http:// URLs are not fetched (no transport security); use https:// or a local file"),
    Case("url_without_checksum", _file_url(None), "config: datasets.ref.sha256: required for a URL source"),
    Case("missing_file", _set(["datasets", "ref", "source"], "missing.h5ad"), "config: datasets.ref.source: file 'missing.h5ad' not found"),
    Case("same_split_part", _same_source(1), "config: groups.g: reference 'ref' and query 'qry' take the same cells (split part 1 of one source); give the query the other part"),
    Case("split_not_complementary", _same_source(2, fraction=0.3), "config: groups.g: reference 'ref' and query 'qry' split one source differently"),
    Case("unknown_dataset", _set(["groups", "g", "query"], ["nope"]), "config: groups.g.query: unknown dataset 'nope' (declared: qry, ref)"),
    Case("mixed_values", _set(["datasets", "qry", "values"], "log-normalised"),
         "config: groups.g: its datasets declare different values ['counts', 'log-normalised']; declare one kind for all"),
    # one dataset, the whole file (rule load_dataset)
    Case("corrupt_file", _corrupt, "broken.h5ad (dataset ref): not a readable h5ad file"),
    Case("empty_file", _empty, "empty.h5ad (dataset ref): X has 0 cells x 80 genes; the dataset needs cells and genes"),
    Case("file_url_wrong_checksum", _file_url("0" * 64), "remote.h5ad: sha256 mismatch (expected 0000"),
    Case("local_wrong_checksum", _local_sha, "ref.h5ad: sha256 mismatch for dataset ref (config: datasets.ref.sha256)"),
    Case("duplicate_obs_names", _ref(_dup_obs), f"{REF}: obs_names: 1 cell name(s) occur more than once ('cell1'); make them unique"),
    Case("duplicate_var_names", _ref(_dup_var), f"{REF}: var_names: 1 gene name(s) occur more than once ('gene0'); make them unique"),
    Case("nan_in_last_row", _x(_nan_last_row), f"{REF}: X has 1 non-finite value(s) (NaN or inf; first at cell 'cell59', gene 'gene79'); fix or remove those cells"),
    Case("scaled_values", _x(_negative), f"{REF}: X has 1 negative value(s) (min -1, first at cell 'cell5', gene 'gene2'); give raw counts"),
    Case("tpm_declared_counts", _x(_tpm), f"{REF}: values: counts is declared, but X has "),
    Case("counts_declared_log", _log_normalised_counts, f"{REF}: values: log-normalised is declared, but X reaches"),
    Case("missing_label_column", _ref(lambda r: r.obs.drop(columns="cell_type", inplace=True)),
         f"{REF}: obs column 'cell_type' (groups.g.label_key) is missing"),
    Case("missing_batch_values", _ref(_missing("batch", [3, 7])),
         f"{REF}: obs column 'batch' (groups.g.batch_keys) has 2 missing value(s) (first: cell 'cell3'); fill them in or remove those cells"),
    Case("empty_string_labels", lambda d, c, r, q: _obs("cell_type", [4], "")(q),
         f"{QRY}: obs column 'cell_type' (groups.g.label_key) has 1 missing value(s) (first: cell 'cell4')"),
    Case("missing_ontology_id", _ref(_missing("cl", [0])), f"{REF}: obs column 'cl' (groups.g.ontology_key) has 1 missing value(s)"),
    Case("unknown_cl_id", _ref(_obs("cl", [5], "CL:9999999")),
         f"{REF}: obs column 'cl' (groups.g.ontology_key) has 1 value(s) that are not terms of the bundled Cell Ontology"),
    Case("negative_fate", _ref(_obs("fate_a", [2], -0.5)),
         f"{REF}: obs column 'fate_a' (groups.g.continuous_keys) has 1 negative or non-finite value(s) (first: cell 'cell2', -0.5)"),
    Case("fates_not_summing_to_one", _ref(_obs("fate_b", [1, 2, 3], 0.0)),
         f"{REF}: groups.g.continuous_keys (fate_a, fate_b): the fates of 3 cell(s) do not sum to 1 (first: cell 'cell1'"),
    Case("missing_fate_column", _set(["groups", "g", "continuous_keys"], ["fate_a", "fate_c"]),
         r"(ref|qry)\.h5ad \(dataset (ref|qry)\): obs column 'fate_c' \(groups\.g\.continuous_keys\) is missing", regex=True),
    Case("unknown_exclude_value", _set(["datasets", "ref", "exclude"], {"obs_key": "cell_type", "values": ["Z"]}),
         f"{REF}: datasets.ref.exclude.values: 'Z' not found in obs column 'cell_type'"),
    Case("exclude_everything", _set(["datasets", "ref", "exclude"], {"obs_key": "cell_type", "values": ["A", "B", "C"]}),
         f"{REF}: datasets.ref.exclude removes every cell (obs column 'cell_type' holds only 'A', 'B', 'C'); exclude fewer values"),
    Case("split_key_missing", _same_source(2, common={"label_key": "celltype"}),
         r"ref\.h5ad \(dataset (ref|qry)\): obs column 'celltype' \(datasets\.(ref|qry)\.split\.label_key\) is missing", regex=True),
    # a reference above preprocess.backed_above_cells is copied as it is and later read by rows: CSC is refused
    Case("csc_above_backed_bound",
         lambda d, c, r, q: c.setdefault("preprocess", {}).update(backed_above_cells=10) or setattr(r, "X", sp.csc_matrix(r.X)),
         "ref.h5ad: X is stored by columns (CSC), and a dataset this large is read by rows in chunks (config: datasets.ref.source)"),
    # the whole group (rule validate, before any preprocess job)
    Case("no_shared_genes", _genes_renamed, f"groups.g: reference ({REF}) and query ({QRY}) share 0 genes, fewer than preprocess.min_shared_genes = 50"),
    Case("qc_removes_every_cell", _set(["preprocess", "min_genes"], 1000),
         "groups.g: the reference of seed 0 has no cells left after split, exclude and QC (min_genes 1000 of 80 shared genes;"),
    Case("k_above_reference", _set(["k"], 500), "config: k = 500 exceeds the 60 reference cells of groups.g in seed 0"),
    Case("k_above_resampled_reference", lambda d, c, r, q: c["groups"]["g"].update(resample={"reference_fraction": 0.5}) or c.update(k=40),
         "config: k = 40 exceeds the 30 reference cells of groups.g in seed 0"),
]


def snakemake(workdir: Path, targets=()) -> subprocess.CompletedProcess:
    # targets before --configfile, which takes every argument after it
    cmd = [sys.executable, "-m", "snakemake", *targets, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-c1",
           "--configfile", str(workdir / "config.yaml")]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=TIMEOUT_S)


def run_case(case: Case, root: Path):
    workdir = root / case.id
    workdir.mkdir()
    config = base_config()
    ref, qry = make(60, "ABC", seed=1), make(40, "ABD", seed=2)
    case.change(workdir, config, ref, qry)
    write(ref, workdir / "ref.h5ad")
    write(qry, workdir / "qry.h5ad")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir)
    output = result.stdout + result.stderr
    (workdir / "console.log").write_text(output)  # what the user saw, kept for a failing case
    return workdir, result.returncode, output


# ----------------------------------------------------------------- valid but unusual
def unusual_inputs(workdir: Path) -> dict:
    """Two groups of unusual but valid data, and a config that runs them with a cheap method and a control."""
    # integer labels, dense float64 X, one batch, 12 reference cells (< n_comps), no negative types in the query
    ref = make(12, [0, 1], seed=3, batches=("only",))
    qry = make(20, [1, 0], seed=4, batches=("only",))
    for adata in (ref, qry):
        adata.X = adata.X.toarray().astype(np.float64)
        adata.obs["cell_type"] = adata.obs["cell_type"].astype(np.int64)
    write(ref, workdir / "int_ref.h5ad")
    write(qry, workdir / "int_qry.h5ad")
    # a reference of one type; the query adds a negative type
    write(make(30, "A", seed=5), workdir / "one_ref.h5ad")
    write(make(30, "AB", seed=6), workdir / "one_qry.h5ad")
    config = base_config()
    config["datasets"] = {name: {"source": f"{name}.h5ad", "values": "counts"} for name in ("int_ref", "int_qry", "one_ref", "one_qry")}
    config["groups"] = {
        "unusual": {"reference": ["int_ref"], "query": ["int_qry"], "label_key": "cell_type", "batch_keys": ["batch"]},
        "one_type": {"reference": ["one_ref"], "query": ["one_qry"], "label_key": "cell_type", "ontology_key": "cl",
                     "continuous_keys": ["fate_a", "fate_b"]},
    }
    config["methods"] = {"pca": {"embedding": "pca", "params": {"n_comps": 20}}, "true_labels": {"predictor": "true_labels"}}
    return config


def kill_and_resume(workdir: Path):
    """Run the unusual config, kill -9 snakemake and its jobs in the embeddings, then resume as the README says.

    Returns (workdir, returncode of the resumed run, its output, the flags that were needed).
    """
    (workdir / "config.yaml").write_text(yaml.safe_dump(unusual_inputs(workdir)))
    cmd = [sys.executable, "-m", "snakemake", *UNUSUAL_TARGETS, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "-c1", "--configfile", str(workdir / "config.yaml")]
    with open(workdir / "killed.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + TIMEOUT_S
        # kill once the run is past validation and into the embeddings
        while proc.poll() is None and time.time() < deadline and not list(workdir.glob("results/*/embeddings/pca/seed0/model0/*.h5ad")):
            time.sleep(0.1)
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if not killed:
        return workdir, -1, "the run ended before it could be killed", []
    # as the README says: the same command; --unlock when Snakemake says the directory is locked,
    # --rerun-incomplete when it reports incomplete files (a job killed between two of its outputs)
    flags, needed = [], []
    for _ in range(3):
        again = snakemake(workdir, [*UNUSUAL_TARGETS, *flags])
        output = again.stdout + again.stderr
        if again.returncode == 0:
            break
        if "--rerun-incomplete" in output and "--rerun-incomplete" not in flags:
            flags.append("--rerun-incomplete")
            needed.append("--rerun-incomplete")
        elif "--unlock" in output:
            unlock = snakemake(workdir, [*UNUSUAL_TARGETS, "--unlock"])
            if unlock.returncode != 0:
                return workdir, unlock.returncode, unlock.stdout + unlock.stderr, needed
            needed.append("--unlock")
        else:
            break
    return workdir, again.returncode, output, needed


# the summary and the two MBA figures (the rest of the default target adds nothing about these inputs)
UNUSUAL_TARGETS = ["results/summary.tsv", "results/figures/mba_pos_neg.png", "results/figures/mba_box.png"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every bad case and the unusual-input run, two snakemake processes at a time."""
    root = tmp_path_factory.mktemp("bad_inputs")
    unusual = root / "unusual_run"
    unusual.mkdir()
    (unusual / "config.yaml").write_text(yaml.safe_dump(unusual_inputs(unusual)))

    def run_unusual():
        result = snakemake(unusual, UNUSUAL_TARGETS)
        return unusual, result.returncode, result.stdout + result.stderr

    resumed = root / "kill_and_resume"
    resumed.mkdir()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        unusual_future = pool.submit(run_unusual)
        resumed_future = pool.submit(kill_and_resume, resumed)
        futures = {case.id: pool.submit(run_case, case, root) for case in CASES}
        results = {name: future.result() for name, future in futures.items()}
        results["unusual"] = unusual_future.result()
        results["kill_and_resume"] = resumed_future.result()
    return results


def test_there_are_enough_cases():
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_with_one_line_and_leaves_nothing(runs, case):
    workdir, returncode, output = runs[case.id]
    assert returncode != 0, output[-3000:]
    found = (lambda line: re.search(case.line, line)) if case.regex else (lambda line: case.line in line)
    lines = [line for line in output.splitlines() if found(line)]
    assert lines, f"expected a line with {case.line!r} in:\n{output[-4000:]}"
    results = workdir / "results"
    assert not (results / "summary.tsv").exists()
    assert not (results / "g").exists()
    assert not list(results.glob("data/*.h5ad")), "loaded datasets of a group that failed validation are removed"
    assert not (results / "validation" / "g.tsv").exists()
    assert not [p for p in workdir.rglob("*cqtmp~*")], "no temporary file is left"


def test_unusual_inputs_run_to_a_correct_summary(runs):
    workdir, returncode, output = runs["unusual"]
    assert returncode == 0, output[-6000:]
    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t")
    value = summary.set_index(["group", "method", "metric"])["value"]
    for group in ("unusual", "one_type"):
        # the control that knows the query's labels and rejects negative types is the ceiling: MBA 1
        assert value[(group, "true_labels", "mba")] == 1.0
        assert value[(group, "true_labels", "mba_positive")] == 1.0
        assert 0.0 <= value[(group, "pca", "accuracy")] <= 1.0
    # integer labels in reference and query match: the well-separated types are found
    assert value[("unusual", "pca", "mba_positive")] >= 0.9
    # no negative types: MBA on negative types is absent (NaN), not 0
    assert math.isnan(value[("unusual", "true_labels", "mba_negative")])
    assert math.isnan(value[("unusual", "pca", "mba_negative")])
    # one reference type: the query's second type is a negative type, rejected by the ceiling
    assert value[("one_type", "true_labels", "mba_negative")] == 1.0
    # the seed's draws hold every cell: 12 and 20, 30 and 30
    validation = pd.read_csv(workdir / "results/validation/unusual.tsv", sep="\t").set_index("side")
    assert validation.loc["reference", "n_cells"] == 12 and validation.loc["query", "n_cells"] == 20
    assert validation.loc["reference", "n_types"] == 2
    for figure in ("mba_pos_neg.png", "mba_box.png"):
        assert (workdir / "results/figures" / figure).stat().st_size > 0


def test_a_changed_file_reloads_and_its_message_names_the_file(tmp_path):
    """The source file is an input of its loading rule: changing it in place reruns what depended on it."""
    config = base_config()
    write(make(60, "ABC", seed=1), tmp_path / "ref.h5ad")
    write(make(40, "ABD", seed=2), tmp_path / "qry.h5ad")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = ["results/validation/g.tsv"]
    first = snakemake(tmp_path, target)
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    broken = make(60, "ABC", seed=1)
    _dup_obs(broken)
    write(broken, tmp_path / "ref.h5ad")
    second = snakemake(tmp_path, target)
    output = second.stdout + second.stderr
    assert second.returncode != 0
    assert f"InputError: {REF}: obs_names: 1 cell name(s) occur more than once ('cell1')" in output
    assert "results/data" not in [line for line in output.splitlines() if line.startswith("InputError")][0]
    write(make(60, "ABC", seed=1), tmp_path / "ref.h5ad")
    third = snakemake(tmp_path, target)
    assert third.returncode == 0, (third.stdout + third.stderr)[-3000:]
    assert "load_dataset" in third.stdout + third.stderr


def test_kill_9_then_unlock_and_rerun_gives_the_same_summary(runs):
    """kill -9 of snakemake and its jobs mid-run; --unlock, the same command again: a byte-identical summary."""
    reference, returncode, _ = runs["unusual"]
    workdir, returncode, output, needed = runs["kill_and_resume"]
    assert returncode == 0, output[-3000:]
    assert "--unlock" in needed  # kill -9 leaves Snakemake's lock
    assert (workdir / "results/summary.tsv").read_bytes() == (reference / "results/summary.tsv").read_bytes()
    assert not list(workdir.rglob("*cqtmp~*"))
