"""Bad input reaches the console as one line; config checks that need no data; temporary files of killed jobs."""

import io
import os
import subprocess
import sys

import pytest

from cellquery.config import check_source, check_split_parts
from cellquery.errors import InputError, failed_job_logs, input_error_lines, report_input_errors
from cellquery.io import atomic_path, remove_stale_temporaries

SNAKEMAKE_LOG = """\
Error in rule load_dataset:
    jobid: 3
    output: results/data/ref.h5ad
    log: {first} (check log file(s) for error details)
Error in rule validate:
    jobid: 1
    log: {second}, {third} (check log file(s) for error details)
"""


def test_report_prints_each_failed_jobs_input_error_once(tmp_path):
    first, second, third = (tmp_path / f"{n}.log" for n in ("a", "b", "c"))
    first.write_text(
        "InputError: data/ref.h5ad (dataset ref): X has 2 non-finite value(s)\n"
        "InputError: data/ref.h5ad (dataset ref): obs_names: 1 cell name(s) occur more than once\n"
        "Traceback (most recent call last):\n  ...\n"
        "cellquery.errors.InputError: data/ref.h5ad (dataset ref): X has 2 non-finite value(s)\n"
    )
    second.write_text("Traceback (most recent call last):\ncellquery.errors.InputError: config: k = 31 exceeds\n")
    third.write_text("nothing to see\n")
    main = tmp_path / "snakemake.log"
    main.write_text(SNAKEMAKE_LOG.format(first=first, second=second, third=third))
    assert failed_job_logs(main.read_text()) == [str(first), str(second), str(third)]
    out = io.StringIO()
    lines = report_input_errors([main], out)
    assert out.getvalue() == (
        "InputError: data/ref.h5ad (dataset ref): X has 2 non-finite value(s)\n"
        "InputError: data/ref.h5ad (dataset ref): obs_names: 1 cell name(s) occur more than once\n"
        "InputError: config: k = 31 exceeds\n"
    )
    assert len(lines) == 3
    assert report_input_errors([tmp_path / "missing.log"], io.StringIO()) == []
    assert input_error_lines("ValueError: x\n") == []


def test_input_error_is_one_line():
    assert str(InputError("a.h5ad:\n  obs column   'x'\tis missing")) == "a.h5ad: obs column 'x' is missing"


def test_sources_must_be_https_or_file_urls_with_a_checksum_or_existing_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"^config: datasets.d.source: http:// URLs are not fetched \(no transport security\); use https://"):
        check_source("d", {"source": "http://example.org/x.h5ad", "sha256": "0" * 64})
    with pytest.raises(InputError, match=r"^config: datasets.d.sha256: required for a URL source"):
        check_source("d", {"source": "file:///data/x.h5ad"})
    with pytest.raises(InputError, match=r"^config: datasets.d.source: only https:// and file:// URLs"):
        check_source("d", {"source": "ftp://example.org/x.h5ad", "sha256": "0" * 64})
    with pytest.raises(InputError, match=rf"^config: datasets.d.source: file 'data/x.h5ad' not found \(relative paths start in the working directory {tmp_path}\)"):
        check_source("d", {"source": "data/x.h5ad"})
    (tmp_path / "data").mkdir()
    (tmp_path / "data/x.h5ad").write_bytes(b"")
    check_source("d", {"source": "data/x.h5ad"})
    check_source("d", {"source": "https://example.org/x.h5ad", "sha256": "0" * 64})


def test_reference_and_query_of_one_source_are_the_two_parts_of_one_split():
    split = {"label_key": "cell_type", "fraction": 0.5, "seed": 0}
    config = {
        "datasets": {
            "a": {"source": "scanpy:pbmc68k_reduced", "split": {**split, "part": 1}},
            "b": {"source": "scanpy:pbmc68k_reduced", "split": {**split, "part": 2}},
            "c": {"source": "scanpy:pbmc68k_reduced", "split": {**split, "part": 1}},
            "d": {"source": "scanpy:pbmc68k_reduced", "split": {**split, "part": 2, "seed": 1}},
            "e": {"source": "scanpy:pbmc68k_reduced"},
            "s1": {"source": "simulate", "simulate": {"seed": 1}},
            "s2": {"source": "simulate", "simulate": {"seed": 2}},
        },
        "groups": {},
    }

    def check(reference, query):
        config["groups"]["g"] = {"reference": [reference], "query": [query]}
        check_split_parts(config, "g")

    check("a", "b")
    check("s1", "s2")
    with pytest.raises(InputError, match=r"^config: groups.g: reference 'a' and query 'c' take the same cells \(split part 1 of one source\)"):
        check("a", "c")
    with pytest.raises(InputError, match=r"split one source differently \(label_key, fraction and seed must agree\)"):
        check("a", "d")
    with pytest.raises(InputError, match=r"read the same source without a split of both"):
        check("a", "e")
    with pytest.raises(InputError, match=r"dataset 'a' is both reference and query"):
        check("a", "a")


def test_atomic_writes_leave_no_temporary_file_and_stale_ones_are_removed(tmp_path):
    target = tmp_path / "sub" / "out.h5ad"
    with atomic_path(target) as tmp:
        tmp.write_text("x")
        assert tmp.name.startswith(".out.h5ad.cqtmp~") and tmp.suffix == ".h5ad"
    assert target.read_text() == "x" and sorted(p.name for p in target.parent.iterdir()) == ["out.h5ad"]
    # a writer killed with kill -9 leaves its temporary file; its process is gone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    host = socket.gethostname().replace("~", "-")
    stale = target.parent / f".out.h5ad.cqtmp~{host}~{dead.pid}~abc.h5ad"
    live = target.parent / f".other.tsv.cqtmp~{host}~{os.getpid()}~abc.tsv"
    foreign = target.parent / f".third.tsv.cqtmp~elsewhere~{dead.pid}~abc.tsv"
    plain = target.parent / ".hidden"
    for path in (stale, live, foreign, plain):
        path.write_text("partial")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert live.exists() and foreign.exists() and plain.exists()
    old = 30 * 24 * 3600
    os.utime(foreign, (foreign.stat().st_atime - old, foreign.stat().st_mtime - old))
    assert remove_stale_temporaries(tmp_path) == [foreign]
    # the next write of a target clears its own stale temporary files
    stale.write_text("partial")
    with atomic_path(target) as tmp:
        tmp.write_text("y")
    assert not stale.exists() and target.read_text() == "y"
