"""Running an R peer tool (Seurat, SingleR) from Python: files in, ``Rscript`` in a subprocess, a table out.

The R side reads nothing but what base R and the ``Matrix`` package read:
expression as Matrix Market (``<part>.mtx``, genes x cells, the orientation
of R's single-cell packages), reference labels one per line
(``reference_labels.txt``) and numeric annotations as CSV
(``reference_fates.csv``). Genes and cells are passed by position: R sees
them as ``g1 .. gN`` and ``c1 .. cN`` (Seurat rewrites names with
underscores), and the table it writes back has one row per query cell in
query order. The scripts live in ``cellquery/predictors/r/`` and are run as
``Rscript --vanilla <script> <work dir> <arguments>``: an argument list, no
shell, so no configuration value is ever parsed by a shell.

A method whose R packages are missing is skipped (:func:`missing_r_packages`,
read by :func:`cellquery.registry.skip_reason`) with the reason in the summary.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

R_DIR = Path(__file__).resolve().parent / "r"
# BLAS and OpenMP threads of the R process: the rule's one thread unless the environment says otherwise
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@functools.cache
def missing_r_packages(packages: tuple[str, ...], debian: str) -> str | None:
    """Why R with ``packages`` is not available here (``debian``: the Debian packages that bring them), or None.

    Checked once per process: ``Rscript`` on PATH and each package installed
    (``system.file(package=)``, which does not load it).
    """
    rscript = shutil.which("Rscript")
    if rscript is None:
        return f"needs R (Rscript) with {', '.join(packages)}; Rscript is not on PATH (Debian: apt-get install {debian})"
    code = 'p <- commandArgs(TRUE); cat(p[!nzchar(vapply(p, function(x) system.file(package = x), ""))], sep = "\\n")'
    try:
        out = subprocess.run([rscript, "--vanilla", "-e", code, *packages], capture_output=True, text=True, timeout=120, check=True)
    except (subprocess.SubprocessError, OSError) as err:
        return f"needs R packages {', '.join(packages)}; Rscript failed to list them ({type(err).__name__})"
    missing = out.stdout.split()
    if missing:
        return f"needs R packages {', '.join(missing)}, which are not installed (Debian: apt-get install {debian})"
    return None


def _csc_genes_by_cells(x) -> sp.csc_matrix:
    """Cells x genes (sparse or dense) as a genes x cells sparse matrix for Matrix Market."""
    x = x if sp.issparse(x) else sp.csr_matrix(np.asarray(x))
    return sp.csc_matrix(x.T, dtype=np.float64)


def write_part(workdir: Path, name: str, x) -> None:
    """``<name>.mtx``: expression of one part (cells x genes in Python), genes x cells on disk."""
    scipy.io.mmwrite(str(workdir / f"{name}.mtx"), _csc_genes_by_cells(x), precision=8)


def write_inputs(workdir: Path, reference_x, query_x, labels: Sequence[str], fates: pd.DataFrame | None = None) -> None:
    """The exchange files of one run: both parts' expression, reference labels and (optional) fates."""
    write_part(workdir, "reference", reference_x)
    write_part(workdir, "query", query_x)
    text = [str(label) for label in labels]
    if any("\n" in label or "\r" in label for label in text):
        raise ValueError("reference labels must not contain line breaks (one label per line on disk)")
    (workdir / "reference_labels.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    if fates is not None and fates.shape[1]:
        pd.DataFrame(fates.to_numpy(float), columns=[f"f{j + 1}" for j in range(fates.shape[1])]).to_csv(
            workdir / "reference_fates.csv", index=False
        )


def run_script(script: str, workdir: Path, args: Sequence[str]) -> None:
    """Run ``r/<script>`` on ``workdir`` with ``args``; its output goes to this process's stderr (the job's log).

    Raises :class:`RuntimeError` with the end of R's output when R fails.
    """
    rscript = shutil.which("Rscript")
    if rscript is None:
        raise RuntimeError("Rscript is not on PATH")
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env.setdefault(name, "1")
    cmd = [rscript, "--vanilla", str(R_DIR / script), str(workdir), *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    sys.stderr.write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")


def workdir() -> tempfile.TemporaryDirectory:
    """A temporary directory for one run's exchange files, removed afterwards (use with ``with``)."""
    return tempfile.TemporaryDirectory(prefix="cellquery-r-")
