"""The Slurm profile (slurm/config.yaml) against a real Slurm cluster.

The end-to-end tests need a cluster that answers `sinfo` (CI starts a
single-node one with .ci/slurm/start.sh before pytest) and are skipped
otherwise. They run a part of config/toy.yaml (every stage, three methods) through
`snakemake --profile slurm` in its own temporary directory, and check that every
job was a Slurm job and that its runs give the same summary rows and predictions
as the same runs of the whole toy config run locally (tests/conftest.py).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "slurm"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TOY = REPO / "config/toy.yaml"
# The part of the toy config the Slurm run keeps: one group; an embedding with a plain and a sharded index
# and the project's transfers (tuning, conformal calibration), a peer predictor and a control. Each Slurm
# job costs seconds of scheduling, so the whole toy DAG (~330 jobs) would take ~35 minutes.
SLURM_GROUP = "simulated"
SLURM_INDEXES = ["flat", "flat_sharded"]
SLURM_METHODS = ["pca", "ingest", "true_labels"]
KEYS = ["group", "method", "index", "transfer", "seed", "reported_as", "metric"]
SLURM_TIMEOUT_S = 2400
# Snakemake asks Slurm for job states every 10 s by default; the toy's jobs take a few seconds each,
# so the test polls every 2 s (a cluster run keeps the profile's default).
STATUS_CHECK_S = "2"
# Node states in which a node can run jobs now or soon.
USABLE_NODE_STATES = {"idle", "mixed", "allocated", "completing"}


def slurm_unavailable_reason() -> str | None:
    """Why the Slurm tests cannot run here (None when a cluster answers)."""
    if shutil.which("sinfo") is None:
        return "sinfo is not on PATH (no Slurm client; CI starts one with .ci/slurm/start.sh)"
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s"
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no message"]
        return f"sinfo failed (no Slurm cluster answers; CI starts one with .ci/slurm/start.sh): {lines[-1][:200]}"
    states = {s.rstrip("*~#!%$@^-+") for s in result.stdout.split()}
    if not states & USABLE_NODE_STATES:
        return f"no Slurm node can run jobs (node states: {sorted(states) or 'none'})"
    partition = profile()["default-resources"]["slurm_partition"]
    partitions = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=20).stdout.split()
    if partition not in partitions:
        return f"this cluster has no partition {partition!r} (the profile's); partitions: {partitions}"
    return None


def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def start(args: list[str], workdir: Path, log: Path) -> subprocess.Popen:
    """Start snakemake in workdir with its output going to log."""
    with open(log, "w") as out:
        return subprocess.Popen(
            SNAKEMAKE + ["-s", str(REPO / "Snakefile"), "-d", str(workdir), *args],
            cwd=workdir, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )


def interrupt(proc: subprocess.Popen | None) -> None:
    """Stop a run that is still going; on SIGINT snakemake cancels its Slurm jobs."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def finish(proc: subprocess.Popen, log: Path, timeout: float, what: str) -> str:
    """Wait for a run; interrupt it if it overruns."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        interrupt(proc)
        pytest.fail(f"{what} did not finish within {timeout} s:\n{log.read_text()[-6000:]}")
    text = log.read_text()
    if proc.returncode != 0:
        pytest.fail(f"{what} failed (exit {proc.returncode}):\n{text[-8000:]}")
    return text


def job_counts(snakemake_output: str) -> dict[str, int]:
    """rule -> number of jobs, from the first "Job stats" table snakemake prints."""
    table = snakemake_output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        name, _, count = line.strip().partition(" ")
        if name == "total" or not name:
            break
        counts[name] = int(count)
    return counts


def test_job_counts_parser():
    text = (
        "Building DAG of jobs...\nJob stats:\njob           count\n----------  -------\n"
        "embed             9\nall               1\ntotal            10\n\nJob stats:\nembed 1\n"
    )
    assert job_counts(text) == {"embed": 9, "all": 1}


def slurm_config(path: Path) -> Path:
    """The end-to-end toy config (toy.yaml + toy_paper.yaml) cut to SLURM_GROUP, SLURM_METHODS and SLURM_INDEXES, written to path."""
    from conftest import toy_config

    config = toy_config()
    config["groups"] = {SLURM_GROUP: config["groups"][SLURM_GROUP]}
    config["groups"][SLURM_GROUP].pop("methods", None)
    config["methods"] = {m: config["methods"][m] for m in SLURM_METHODS}
    for spec in config["methods"].values():
        if "indexes" in spec:
            spec["indexes"] = [i for i in spec["indexes"] if i in SLURM_INDEXES]
    config["indexes"] = {i: config["indexes"][i] for i in SLURM_INDEXES}
    used = set(config["groups"][SLURM_GROUP]["reference"]) | set(config["groups"][SLURM_GROUP]["query"])
    config["datasets"] = {d: spec for d, spec in config["datasets"].items() if d in used}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory, toy_run):
    """Part of the toy config run through the Slurm profile, beside the shared local run (tests/conftest.py)."""
    reason = slurm_unavailable_reason()
    if reason:
        pytest.skip(reason)
    slurm_dir = tmp_path_factory.mktemp("slurm_run")
    slurm_log = slurm_dir.parent / f"{slurm_dir.name}.log"
    config = slurm_config(slurm_dir.parent / f"{slurm_dir.name}.yaml")
    t0 = time.monotonic()
    args = ["--profile", str(PROFILE), "--configfile", str(config), "--seconds-between-status-checks", STATUS_CHECK_S]
    slurm = start(args, slurm_dir, slurm_log)
    try:
        slurm_out = finish(slurm, slurm_log, SLURM_TIMEOUT_S, "run through Slurm")
    finally:
        interrupt(slurm)
    print(f"toy config ({', '.join(SLURM_METHODS)}) through Slurm: {time.monotonic() - t0:.0f} s")
    return dict(slurm_dir=slurm_dir, local_dir=toy_run.workdir, slurm_out=slurm_out, local_out=toy_run.output,
                config=config)


def test_every_job_ran_as_a_slurm_job(toy_runs):
    out, workdir = toy_runs["slurm_out"], toy_runs["slurm_dir"]
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    # The plugin's record of each submission: snakemake job, Slurm job id, Slurm log file.
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.\n", out)
    assert submitted, "no job was submitted to Slurm"
    slurm_ids = [s[1] for s in submitted]
    assert len(set(slurm_ids)) == len(slurm_ids), "a Slurm job id was reported twice"

    # Slurm's own record of the jobs of this run (the job name is the run id).
    result = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--name", run_id, "--format=%i|%T|%k|%Z"],
        capture_output=True, text=True, check=True, timeout=30,
    )
    jobs = {}
    for line in result.stdout.splitlines():
        job_id, state, comment, job_workdir = line.split("|")
        jobs[job_id] = (state, comment, job_workdir)
    assert set(jobs) == set(slurm_ids), "Slurm's jobs of this run differ from the submissions the plugin reported"

    per_rule = {}
    for _, job_id, log in submitted:
        state, comment, job_workdir = jobs[job_id]
        rule = re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", comment).group(1)
        per_rule[rule] = per_rule.get(rule, 0) + 1
        assert state == "COMPLETED", (job_id, rule, state)
        assert Path(job_workdir) == workdir, (job_id, job_workdir)
        # Slurm wrote the job's output to <slurm_logs>/rule_<rule>/<wildcards>/<job id>.log.
        log = Path(log)
        assert log.name == f"{job_id}.log" and log.is_relative_to(workdir / ".snakemake/slurm_logs" / f"rule_{rule}")
        assert re.search(rf"Finished jobid: \d+ \(Rule: {rule}\)", log.read_text()), f"{log} shows no finished {rule}"

    # Every job of the DAG (as the run planned it) but the input-only target rule went through Slurm:
    # every stage from loading to the figures.
    expected = job_counts(out)
    assert expected.pop("all") == 1
    assert per_rule == expected
    assert {"load_dataset", "validate", "preprocess", "embed", "build_index", "query_index", "merge_hits",
            "tune_transfer", "conformal_calibration", "transfer", "predict", "metrics", "summary_table"} <= set(per_rule)


def read_summary(path: Path) -> pd.DataFrame:
    summary = pd.read_csv(path, sep="\t")
    assert not summary.duplicated(KEYS).any(), f"{path}: duplicate rows"
    return summary.sort_values(KEYS).reset_index(drop=True)


def test_summary_equals_local_run(toy_runs):
    """The Slurm run's summary rows are the local toy run's rows of the same methods, value for value."""
    slurm = read_summary(toy_runs["slurm_dir"] / "results/summary.tsv")
    local = read_summary(toy_runs["local_dir"] / "results/summary.tsv")
    local = local.merge(slurm[KEYS[:5]].drop_duplicates(), on=KEYS[:5])  # the local run's rows of the same runs
    local = local.sort_values(KEYS).reset_index(drop=True)
    assert len(slurm) > 0 and set(slurm["method"]) == set(SLURM_METHODS)
    pd.testing.assert_frame_equal(slurm[KEYS], local[KEYS])
    a = pd.to_numeric(slurm["value"], errors="coerce").to_numpy(float)
    b = pd.to_numeric(local["value"], errors="coerce").to_numpy(float)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True)


def test_predictions_equal_local_run(toy_runs):
    slurm_files = sorted(p.relative_to(toy_runs["slurm_dir"]) for p in (toy_runs["slurm_dir"] / "results").rglob("predictions.tsv"))
    local_files = sorted(p.relative_to(toy_runs["local_dir"]) for p in (toy_runs["local_dir"] / "results").rglob("predictions.tsv"))
    assert slurm_files and set(slurm_files) <= set(local_files)
    assert {p.parts[3] for p in slurm_files} == set(SLURM_METHODS)  # results/<group>/<kind>/<method>/...
    for rel in slurm_files:
        a = pd.read_csv(toy_runs["slurm_dir"] / rel, sep="\t")
        b = pd.read_csv(toy_runs["local_dir"] / rel, sep="\t")
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=0, atol=1e-9, obj=str(rel))


def test_profile_dry_run_plans_the_default_dag():
    """`snakemake --profile slurm -n` from the repository root, as the README types it (no cluster needed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE_PROFILE")}

    def dry_run(*args):
        result = subprocess.run(SNAKEMAKE + [*args, "-n", "--forceall"], cwd=REPO, capture_output=True, text=True,
                                timeout=300, env=env)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out[-6000:]
        return out

    out = dry_run("--profile", "slurm")
    counts = job_counts(out)
    rules = {"load_dataset", "preprocess", "hvg", "embed", "build_index", "query_index", "transfer", "metrics",
             "aggregate", "gather_benchmarks", "all"}
    assert rules <= set(counts), counts
    # The profile changes where jobs run, not which: the same DAG as a plain local plan.
    assert counts == job_counts(dry_run("-c1"))
    # Every job carries the profile's partition and account.
    defaults = profile()["default-resources"]
    resources = re.findall(r"^\s+resources: (.*)$", out, flags=re.M)
    assert len(resources) == sum(counts.values())
    for line in resources:
        assert f"slurm_partition={defaults['slurm_partition']}" in line
        assert f"slurm_account={defaults['slurm_account']}" in line


def test_profile_settings():
    settings = profile()
    assert settings["executor"] == "slurm"
    assert {"slurm_partition", "slurm_account", "mem_mb", "runtime"} <= set(settings["default-resources"])
    # squeue works without Slurm accounting; the plugin's default (sacct) hangs there.
    assert settings["slurm-status-command"] == "squeue"
    # The Slurm test reads the kept per-job logs.
    assert settings["slurm-keep-successful-logs"] is True


def scontrol_job(job_id: str) -> dict[str, str]:
    """The Key=Value fields of `scontrol show job` (the one-line form)."""
    text = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, check=True,
                          timeout=30).stdout
    return dict(field.split("=", 1) for field in text.split() if "=" in field)


def test_gpu_config_key_sets_the_slurm_gpu_request(toy_runs):
    """config gpu: 0 (toy) asks Slurm for no GPU; --config gpu=1 asks for one (the CI node has a stand-in GPU).

    Runs last: it re-runs one embed job of the Slurm run in place.
    """
    workdir, out = toy_runs["slurm_dir"], toy_runs["slurm_out"]
    assert yaml.safe_load(TOY.read_text())["gpu"] == 0
    toy_embed = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: \S+/rule_embed/", out)
    assert toy_embed
    for job_id in toy_embed:
        assert "gpu" not in scontrol_job(job_id).get("TresPerJob", ""), job_id

    # a PCA embedding: it has no GPU code, so it completes on the CI node's stand-in GPU (a scVI
    # job that asked for a GPU and sees no CUDA device stops: tests/test_device.py)
    target = re.search(r"^rule embed:\n(?:    .*\n)*?    output: ([^,\n]*/embeddings/pca/[^,\n]+)", out, flags=re.M).group(1)
    log = workdir.parent / f"{workdir.name}_gpu.log"
    proc = start(["--profile", str(PROFILE), "--configfile", str(toy_runs["config"]), "--config", "gpu=1", "--force", target],
                 workdir, log)
    gpu_out = finish(proc, log, 600, "an embed job with gpu=1 through Slurm")
    gpu_embed = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: \S+/rule_embed/", gpu_out)
    assert len(gpu_embed) == 1 and len(re.findall(r"has been submitted with SLURM jobid", gpu_out)) == 1
    job = scontrol_job(gpu_embed[0])
    assert job["JobState"] == "COMPLETED", job["JobState"]
    assert job.get("TresPerJob") == "gres:gpu:1", job.get("TresPerJob")
