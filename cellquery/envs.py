"""How jobs reach this library in the conda envs of envs/ (envs/README.md).

The envs do not install cellquery: the workflow puts its own folder first on
``PYTHONPATH``, which every job inherits (locally, and on Slurm where the job's
Snakemake reads the same Snakefile again), so a job imports the cellquery of the
workflow it runs wherever Snakemake deployed its env.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping


def put_first_on_pythonpath(folder: str, environ: MutableMapping[str, str] = os.environ) -> str:
    """Put ``folder`` first on ``environ["PYTHONPATH"]`` (once, keeping the other entries); return the new value."""
    entries = [str(folder), *environ.get("PYTHONPATH", "").split(os.pathsep)]
    environ["PYTHONPATH"] = os.pathsep.join(e for e in dict.fromkeys(entries) if e)
    return environ["PYTHONPATH"]
