"""Fig. 2c of the Cell BLAST paper: MBA boxes per method, ranked by median MBA, controls marked."""

import matplotlib.pyplot as plt
from matplotlib.patches import PathPatch, Rectangle
import numpy as np
import pandas as pd
import pytest

from cellquery.plots import distinct_colours
from cellquery.plots import mba_box
from cellquery.plots.mba_box import method_boxes, method_order, plot_mba_box, tick_label
from cellquery.predictors.controls import CONTROLS
from cellquery.summary import SUMMARY_COLUMNS

PNG = b"\x89PNG\r\n\x1a\n"
# (method, reported_as, typical MBA on positive types, on negative types)
RUNS = [
    ("pca", "pca", 0.85, 0.2), ("pca", "calibrated-pca", 0.8, 0.7), ("cellblast", "cellblast", 0.75, 0.8),
    ("ingest", "ingest", 0.9, 0.0), ("random_labels", "random_labels", 0.25, 0.0), ("majority_label", "majority_label", 0.2, 0.0),
    ("true_labels", "true_labels", 1.0, 1.0), ("reject_all", "reject_all", 0.0, 1.0),
]
TRANSFERS = {"pca": "majority", "calibrated-pca": "calibrated"}  # the embedding runs; the others are predictors


def fake_summary(negatives=True, seeds=3):
    rng = np.random.default_rng(0)
    rows = []
    for group in ("simulated", "pbmc68k"):
        for method, shown, pos, neg in RUNS:
            for seed in range(seeds):
                control = method in CONTROLS
                p = pos if control else float(np.clip(pos + rng.normal(0, 0.05), 0, 1))
                n = (neg if control else float(np.clip(neg + rng.normal(0, 0.05), 0, 1))) if negatives else np.nan
                mba = np.nanmean([p, n])
                index, transfer = ("flat", TRANSFERS[shown]) if shown in TRANSFERS else ("native", "native")
                for metric, value in (("mba_positive", p), ("mba_negative", n), ("mba", mba), ("accuracy", p)):
                    rows.append((group, method, index, transfer, seed, shown, metric, value))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


@pytest.fixture
def drawn(monkeypatch):
    """Figures plot_mba_box saves (closed, but their artists stay for the test to look at)."""
    figures = []
    real = mba_box.save_png
    monkeypatch.setattr(mba_box, "save_png", lambda fig, path: (figures.append(fig), real(fig, path)))
    return figures


def test_order_by_median_mba():
    values = pd.DataFrame({
        "shown": ["a", "a", "a", "b", "b", "c", "d"],
        "metric": ["mba", "mba", "mba", "mba", "mba", "mba_positive", "mba"],
        "value": [0.1, 0.9, 0.8, 0.5, 0.6, 1.0, 0.8],
    })
    # medians a 0.8, d 0.8 (tie: by name), b 0.55; c has no MBA: last
    assert method_order(values) == ["a", "d", "b", "c"]
    assert tick_label("reject_all", CONTROLS) == "reject_all (control)" and tick_label("pca", CONTROLS) == "pca"


def test_boxes_line_up_and_controls_are_grey_and_hatched():
    values = pd.DataFrame({"shown": ["pca", "pca", "reject_all"], "group": ["g", "g", "g"], "value": [0.2, 0.4, 1.0]})
    order = ["pca", "cellblast", "reject_all"]  # cellblast has no values: its row stays empty
    colours = distinct_colours(order)
    fig, ax = plt.subplots()
    method_boxes(ax, values, order, colours, {"g": "o"}, {"reject_all"})
    boxes = [p for p in ax.patches if isinstance(p, PathPatch)]
    (band,) = [p for p in ax.patches if isinstance(p, Rectangle)]  # the control's row, shaded
    assert len(boxes) == 2 and band.get_y() == 1.5 and band.get_height() == 1.0
    assert boxes[0].get_facecolor()[:3] == pytest.approx(colours["pca"][:3]) and not boxes[0].get_hatch()
    assert boxes[1].get_facecolor()[:3] == pytest.approx((0.8, 0.8, 0.8)) and boxes[1].get_hatch() == "///"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["pca", "cellblast", "reject_all (control)"]
    assert list(ax.get_yticks()) == [0, 1, 2] and ax.get_ylim() == (2.5, -0.5)  # the best at the top
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    assert sorted(points[:, 0]) == [0.2, 0.4, 1.0] and np.all(np.abs(points[:, 1] - [0, 0, 2]) < 0.2)
    plt.close(fig)


def test_figure(tmp_path, drawn):
    out = tmp_path / "sub" / "mba_box.png"
    plot_mba_box(fake_summary(), out, controls=CONTROLS)
    assert out.read_bytes()[:8] == PNG
    (fig,) = drawn
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["MBA, positive types", "MBA, negative types", "MBA (mean of both)"]
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "true_labels (control)" and labels[-1] in {"random_labels (control)", "majority_label (control)"}
    assert "cellblast" in labels and "calibrated-pca" in labels  # shown by reported_as
    # one box per method in each panel, every group x seed a point
    assert [sum(isinstance(p, PathPatch) for p in ax.patches) for ax in fig.axes[:3]] == [len(RUNS)] * 3
    assert sum(len(c.get_offsets()) for c in fig.axes[2].collections) == len(RUNS) * 2 * 3


def test_no_negative_types(tmp_path, drawn):
    out = tmp_path / "mba_box.png"
    plot_mba_box(fake_summary(negatives=False), out, controls=CONTROLS)
    assert out.read_bytes()[:8] == PNG
    negative = drawn[0].axes[1]
    assert [t.get_text() for t in negative.texts] == ["no negative types"] and not negative.axison
    assert sum(isinstance(p, PathPatch) for p in drawn[0].axes[0].patches) == len(RUNS)


def test_empty_summary_and_one_seed(tmp_path, drawn):
    plot_mba_box(pd.DataFrame(columns=SUMMARY_COLUMNS), tmp_path / "empty.png")
    assert [ax.texts[0].get_text() for ax in drawn[0].axes[:3]] == ["no data"] * 3
    plot_mba_box(fake_summary(seeds=1).drop(columns="reported_as"), tmp_path / "one.png")  # shown by method
    assert (tmp_path / "one.png").read_bytes()[:8] == PNG


def test_workflow_script(tmp_path, drawn, run_workflow_script):
    from types import SimpleNamespace

    fake_summary().to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    snakemake = SimpleNamespace(input=[tmp_path / "summary.tsv"], output=[tmp_path / "figures/mba_box.png"],
                                params=SimpleNamespace(controls=["true_labels", "reject_all"]), log=[tmp_path / "log.txt"])
    run_workflow_script("figure_mba_box.py", snakemake)
    assert (tmp_path / "figures/mba_box.png").read_bytes()[:8] == PNG
    labels = [t.get_text() for t in drawn[0].axes[0].get_yticklabels()]
    assert "true_labels (control)" in labels and "random_labels" in labels  # only the controls the rule names
