"""MBA figures of queries without negative types: the panels say so; nothing is drawn as a score of 0."""

import numpy as np
import pandas as pd
import pytest

from cellquery.plots import mba as mba_plot
from cellquery.plots import mba_box


def summary(with_negative_rows: bool) -> pd.DataFrame:
    """Group g1 has negative types; g2 has none (its mba_negative is NaN, or its rows are absent)."""
    rows = []
    for group, method, pos, neg in (("g1", "pca", 0.9, 0.4), ("g1", "ctrl", 1.0, 1.0), ("g2", "pca", 0.8, np.nan), ("g2", "ctrl", 1.0, np.nan)):
        run = dict(group=group, method=method, index="flat", transfer="majority", seed=0, reported_as=method)
        rows.append({**run, "metric": "mba_positive", "value": pos})
        if with_negative_rows or not np.isnan(neg):
            rows.append({**run, "metric": "mba_negative", "value": neg})
        rows.append({**run, "metric": "mba", "value": np.nanmean([pos, neg])})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("with_negative_rows", [True, False], ids=["nan_rows", "no_rows"])
def test_mba_table_keeps_runs_without_negative_types(with_negative_rows):
    wide = mba_plot.mba_table(summary(with_negative_rows)).set_index(["group", "shown"])
    assert wide.loc[("g2", "pca"), "mba_positive"] == 0.8 and np.isnan(wide.loc[("g2", "pca"), "mba_negative"])
    assert wide.loc[("g1", "pca"), "mba_negative"] == 0.4
    only_positive = summary(False)
    only_positive = only_positive[only_positive["group"] == "g2"]
    assert np.isnan(mba_plot.mba_table(only_positive)["mba_negative"]).all()


def test_mba_figure_marks_groups_without_negative_types(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(mba_plot, "save_png", lambda fig, path: drawn.setdefault("fig", fig))
    mba_plot.plot_mba_pos_neg(summary(False), tmp_path / "x.png")
    g1, g2 = drawn["fig"].axes[:2]
    texts = {ax.get_title(): [t.get_text() for t in ax.texts] for ax in (g1, g2)}
    assert "no negative types in the query" in texts["g2"] and texts["g1"] == []
    # g2's points: x is MBA on positive types, y the middle of an axis marked undefined (never 0)
    points = np.concatenate([c.get_offsets() for c in g2.collections])
    assert sorted(map(tuple, points)) == [(0.8, 0.5), (1.0, 0.5)]
    points = np.concatenate([c.get_offsets() for c in g1.collections])
    assert sorted(map(tuple, points)) == [(0.9, 0.4), (1.0, 1.0)]


def test_mba_box_names_groups_without_negative_types(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(mba_box, "save_png", lambda fig, path: drawn.setdefault("fig", fig))
    mba_box.plot_mba_box(summary(True), tmp_path / "x.png", controls=["ctrl"])
    titles = [ax.get_title() for ax in drawn["fig"].axes[:3]]
    assert titles == ["MBA, positive types", "MBA, negative types\n(no negative types: g2)", "MBA (mean of both)"]
