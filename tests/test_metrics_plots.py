"""Metric plots: PNG written for data and for an empty summary."""

import numpy as np
import pandas as pd
import pytest

from cellquery.plots.cl_accuracy import plot_cl_accuracy
from cellquery.plots.jsd import plot_jsd
from cellquery.plots.map_alignment import plot_map_vs_alignment

COLUMNS = ["group", "method", "index", "transfer", "seed", "metric", "value"]
PNG = b"\x89PNG\r\n\x1a\n"


def _summary():
    rng = np.random.default_rng(0)
    rows = []
    for g in ("g1", "g2"):
        for m in ("pca", "cellblast"):
            for s in range(3):
                for met in ("map", "seurat_alignment", "jsd", "cl_accuracy", "cl_mba", "mba"):
                    rows.append((g, m, "flat", "majority", s, met, float(rng.uniform())))
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.mark.parametrize("plot", [plot_map_vs_alignment, plot_jsd, plot_cl_accuracy])
@pytest.mark.parametrize("empty", [False, True])
def test_plot_writes_png(tmp_path, plot, empty):
    summary = _summary()
    if empty:
        summary = summary.iloc[0:0]
    out = tmp_path / "sub" / "fig.png"
    assert plot(summary, out) is None
    assert out.read_bytes()[:8] == PNG


@pytest.mark.parametrize("plot", [plot_map_vs_alignment, plot_jsd, plot_cl_accuracy])
def test_plot_without_its_metrics(tmp_path, plot):
    summary = _summary()
    summary = summary[summary["metric"] == "mba"]
    out = tmp_path / "fig.png"
    plot(summary, out)
    assert out.read_bytes()[:8] == PNG
