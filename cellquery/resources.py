"""Job resources (``mem_mb``, ``runtime``) derived from measured runs.

Every rule's ``mem_mb`` and ``runtime`` come from ``config/resources.tsv``: the
largest peak memory and wall time that jobs of the rule reached in measured runs
(``results/benchmarks.tsv``, written by every run), times a margin, rounded up.
Rules whose cost depends on the method (``embed``, ``predict``: Cell BLAST
trains four networks, ingest runs a PCA) have one row per plugin (``predict:cellblast``).
A rule without a measurement gets the ``default`` row. Snakemake multiplies
both values by the attempt number, so a job retried with ``--retries`` asks for
more (README, "Running on a cluster").

Regenerate the table after a run on your own data (or merge runs)::

    python -m cellquery.resources results/benchmarks.tsv config/config.yaml \\
        [other/benchmarks.tsv other/config.yaml ...] -o config/resources.tsv
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import yaml

# Rules whose jobs differ by orders of magnitude between methods: one row per plugin.
PER_METHOD = ("embed", "predict")
MARGIN = 1.5
FLOOR_MB = 500
FLOOR_MIN = 5
DEFAULT = {"mem_mb": 2000, "runtime": 30}
COLUMNS = ["key", "mem_mb", "runtime", "peak_rss_mb", "peak_wall_s", "jobs"]


def plugin_of(config: dict, method: str) -> str:
    """The embedding or predictor plugin a configured method runs (``cellblast_fast`` -> ``cellblast``)."""
    spec = config["methods"][method]
    return spec.get("embedding", spec.get("predictor", method))


def job_key(rule: str, job: str, config: dict) -> str:
    """The table row a benchmark job counts for: ``rule`` or, for per-method rules, ``rule:plugin``."""
    if rule in PER_METHOD:
        method = job.split("/")[2]  # rule/group/method/seed...
        if method in config.get("methods", {}):
            return f"{rule}:{plugin_of(config, method)}"
    return rule


def derive(runs: list[tuple[pd.DataFrame, dict]], margin: float = MARGIN) -> pd.DataFrame:
    """Resource table from measured runs, each a (benchmarks.tsv table, its config) pair.

    mem_mb = peak RSS x margin rounded up to 100 MB (at least FLOOR_MB); runtime =
    peak wall time x margin in whole minutes (at least FLOOR_MIN). The peak is over
    every job of the key in every run, so one slow or large job sets its rule's value.
    """
    keyed = pd.concat(
        [bench.assign(key=[job_key(r, j, cfg) for r, j in zip(bench["rule"], bench["job"])]) for bench, cfg in runs],
        ignore_index=True,
    )
    peaks = keyed.groupby("key").agg(peak_rss_mb=("max_rss_mb", "max"), peak_wall_s=("wall_s", "max"),
                                     jobs=("job", "size"))
    table = peaks.reset_index()
    table["mem_mb"] = [max(FLOOR_MB, 100 * math.ceil(v * margin / 100)) for v in table.peak_rss_mb]
    table["runtime"] = [max(FLOOR_MIN, math.ceil(v * margin / 60)) for v in table.peak_wall_s]
    default = pd.DataFrame([{"key": "default", **DEFAULT, "peak_rss_mb": float("nan"), "peak_wall_s": float("nan"),
                             "jobs": 0}])
    return pd.concat([table, default], ignore_index=True)[COLUMNS].sort_values("key", ignore_index=True)


def read_table(path: str | Path) -> dict[str, dict[str, int]]:
    """key -> {"mem_mb", "runtime"} from a resources.tsv."""
    table = pd.read_csv(path, sep="\t", comment="#")
    return {row.key: {"mem_mb": int(row.mem_mb), "runtime": int(row.runtime)} for row in table.itertuples()}


def declared(table: dict, rule: str, plugin: str | None = None) -> dict[str, int]:
    """The row for ``rule`` run by ``plugin``: ``rule:plugin``, else ``rule``, else ``default``."""
    for key in (f"{rule}:{plugin}" if plugin else None, rule, "default"):
        if key in table:
            return table[key]
    return DEFAULT


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="pairs: benchmarks.tsv config.yaml [benchmarks.tsv config.yaml ...]")
    parser.add_argument("--margin", type=float, default=MARGIN)
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    if len(args.runs) % 2:
        parser.error("give benchmarks.tsv and config.yaml in pairs")
    runs = [(pd.read_csv(b, sep="\t"), yaml.safe_load(Path(c).read_text()))
            for b, c in zip(args.runs[::2], args.runs[1::2])]
    table = derive(runs, args.margin)
    with open(args.output, "w") as out:
        out.write("# mem_mb, runtime (min): peak of measured jobs x "
                  f"{args.margin}, rounded up (python -m cellquery.resources; cellquery/resources.py)\n")
        out.write("# measured: " + " ".join(args.runs[::2]) + "\n")
        table.to_csv(out, sep="\t", index=False, float_format="%.2f")


if __name__ == "__main__":
    main()
