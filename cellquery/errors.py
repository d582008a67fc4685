"""Errors raised on bad input: one line that names the file and the field; and how they reach the console."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO


class InputError(ValueError):
    """Bad user input (config, data file, column, value).

    The message is one line and names the file and the field at fault, e.g.
    ``InputError("results/x.h5ad: obs column 'cell_type' is missing")``.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


# A job's log holds the traceback of its InputError (last line
# "cellquery.errors.InputError: <message>") and, for checks that find several
# problems, one "InputError: <message>" line per problem before it.
_LINE = re.compile(r"^(?:cellquery\.errors\.)?InputError: (.+)$")
# Snakemake's report of a failed job names the job's log files.
_FAILED_LOGS = re.compile(r"^\s*log: (.+) \(check log file\(s\) for error details\)\s*$")


def input_error_lines(text: str) -> list[str]:
    """The InputError messages of a job's log, each once, in order of appearance."""
    found = [m.group(1).strip() for m in map(_LINE.match, text.splitlines()) if m]
    return list(dict.fromkeys(found))


def failed_job_logs(text: str) -> list[str]:
    """The log files of the failed jobs named in Snakemake's own log ``text``, in order, each once."""
    logs = []
    for line in text.splitlines():
        match = _FAILED_LOGS.match(line)
        if match:
            logs += [part.strip() for part in match.group(1).split(",")]
    return list(dict.fromkeys(logs))


def report_input_errors(snakemake_logs: str | os.PathLike | Iterable, stream: TextIO) -> list[str]:
    """Print the InputError lines of every failed job to ``stream`` (Snakefile ``onerror``); return them.

    ``snakemake_logs``: Snakemake's own log file(s) of the run, which name the
    failed jobs' logs. Each message is printed once, as
    ``InputError: <message>``, so that the user never has to open a log for
    a bad-input error.
    """
    paths = [snakemake_logs] if isinstance(snakemake_logs, (str, os.PathLike)) else list(snakemake_logs or [])
    lines = []
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        for job_log in failed_job_logs(text):
            try:
                lines += input_error_lines(Path(job_log).read_text(errors="replace"))
            except OSError:
                continue
    lines = list(dict.fromkeys(lines))
    for line in lines:
        print(f"InputError: {line}", file=stream, flush=True)
    return lines
