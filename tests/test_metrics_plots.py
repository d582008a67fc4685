"""Metric plots: PNG written for data and for an empty summary; shared run names and colours."""

import numpy as np
import pandas as pd
import pytest

from cellquery.plots import distinct_colours, shown_names
from cellquery.plots.cl_accuracy import plot_cl_accuracy
from cellquery.plots.jsd import plot_jsd
from cellquery.plots.map_alignment import plot_map_vs_alignment
from cellquery.plots.mba import plot_mba_pos_neg

COLUMNS = ["group", "method", "index", "transfer", "seed", "metric", "value"]
PNG = b"\x89PNG\r\n\x1a\n"


def _summary():
    rng = np.random.default_rng(0)
    rows = []
    for g in ("g1", "g2"):
        for m in ("pca", "cellblast"):
            for s in range(3):
                for met in ("map", "seurat_alignment", "jsd", "cl_accuracy", "cl_mba", "mba", "mba_positive", "mba_negative"):
                    rows.append((g, m, "flat", "majority", s, met, float(rng.uniform())))
    return pd.DataFrame(rows, columns=COLUMNS)


PLOTS = [plot_map_vs_alignment, plot_jsd, plot_cl_accuracy, plot_mba_pos_neg]


@pytest.mark.parametrize("plot", PLOTS)
@pytest.mark.parametrize("empty", [False, True])
def test_plot_writes_png(tmp_path, plot, empty):
    summary = _summary()
    if empty:
        summary = summary.iloc[0:0]
    out = tmp_path / "sub" / "fig.png"
    assert plot(summary, out) is None
    assert out.read_bytes()[:8] == PNG


@pytest.mark.parametrize("plot", PLOTS)
def test_plot_without_its_metrics(tmp_path, plot):
    summary = _summary()
    summary = summary[summary["metric"] == "mba"]
    out = tmp_path / "fig.png"
    plot(summary, out)
    assert out.read_bytes()[:8] == PNG


@pytest.mark.parametrize("plot", PLOTS)
def test_plot_with_reported_as(tmp_path, plot):
    summary = _summary()
    summary["reported_as"] = np.where(summary["method"] == "pca", "calibrated-pca", summary["method"])
    out = tmp_path / "fig.png"
    plot(summary, out)
    assert out.read_bytes()[:8] == PNG


def test_shown_names_prefer_reported_as():
    summary = _summary()
    assert shown_names(summary).equals(summary["method"])  # a table without the column
    summary["reported_as"] = np.where(summary["method"] == "pca", "calibrated-pca", None)
    assert set(shown_names(summary)) == {"calibrated-pca", "cellblast"}  # empty entries fall back to the method


def test_distinct_colours():
    names = [f"method{i:02d}" for i in range(20)]
    colours = distinct_colours(names)
    assert len(set(colours.values())) == 20
    assert distinct_colours(reversed(names)) == colours  # stable for a given set of names
    assert distinct_colours(names + names[:3]) == colours
    many = distinct_colours(f"m{i}" for i in range(45))  # beyond the qualitative palettes
    assert len(set(many.values())) == 45


def test_map_alignment_shows_one_point_per_embedding():
    """The transfers of one embedding share its MAP and alignment: one point, named by all of them."""
    from cellquery.plots.map_alignment import _per_run

    rows = []
    for seed, (map_, sas) in enumerate([(0.7, 0.4), (0.9, 0.6)]):
        for reported_as, transfer in [("pca", "majority"), ("calibrated-pca", "calibrated"), ("conformal-pca", "conformal")]:
            rows += [("g1", "pca", "flat", transfer, seed, "map", map_, reported_as),
                     ("g1", "pca", "flat", transfer, seed, "seurat_alignment", sas, reported_as)]
        # a method shown only under another name takes that name's colour
        rows += [("g1", "scvi", "flat", "kernel", seed, "map", 0.5, "kernel-scvi"),
                 ("g1", "scvi", "flat", "kernel", seed, "seurat_alignment", 0.8, "kernel-scvi")]
    wide = _per_run(pd.DataFrame(rows, columns=[*COLUMNS, "reported_as"]))
    assert len(wide) == 4  # 2 embeddings x 2 seeds
    pca = wide[wide["colour_of"] == "pca"].sort_values("seed")
    assert set(pca["shown"]) == {"pca (= calibrated-pca, conformal-pca)"}
    assert pca["map"].tolist() == pytest.approx([0.7, 0.9]) and pca["sas"].tolist() == pytest.approx([0.4, 0.6])
    scvi = wide[wide["shown"] == "kernel-scvi"]
    assert set(scvi["colour_of"]) == {"kernel-scvi"} and scvi["map"].tolist() == pytest.approx([0.5, 0.5])


def test_run_colours_follow_the_workflows_names():
    """Labels that are shown names take the colours the summary figures give them; others get their own."""
    from cellquery.plots import run_colours

    names = ["calibrated-pca", "cellblast", "cellmapper", "pca", "scanvi", "true_labels"]
    everywhere = distinct_colours(names)
    subset = run_colours(["pca", "cellmapper"], names)
    assert subset == {"cellmapper": everywhere["cellmapper"], "pca": everywhere["pca"]}
    assert subset["pca"] != distinct_colours(["pca", "cellmapper"])["pca"]  # the local palette would differ
    # "pca / ivfpq" is no shown name: the labels are coloured among themselves, all different
    own = run_colours(["pca / flat", "pca / ivfpq"], names)
    assert own == distinct_colours(["pca / flat", "pca / ivfpq"]) and len(set(own.values())) == 2
    assert run_colours(["pca", "cellmapper"]) == distinct_colours(["pca", "cellmapper"])
