"""The spatial comparison figure's table: arms by plugin, values of the spatial groups, means over seeds (hand-made summary)."""

import numpy as np
import pandas as pd
import pytest

from cellquery.plots.spatial_methods import arm_means, arm_values, method_arms, plot_spatial_methods

METHODS = {
    "pca": {"embedding": "pca"},
    "spatial_avg": {"embedding": "spatial_avg"},
    "gnn_fast": {"predictor": "gnn"},
    "gnn_pretrained_fast": {"predictor": "gnn_pretrained"},
    "scvi": {"embedding": "scvi"},
    "true_labels": {"predictor": "true_labels"},
}


def summary() -> pd.DataFrame:
    rows = [
        # group, method, index, transfer, seed, reported_as, metric, value
        ("sp", "gnn_fast", "native", "native", 0, "gnn_fast", "mba", 0.5),
        ("sp", "gnn_fast", "native", "native", 1, "gnn_fast", "mba", 0.7),
        ("sp", "gnn_fast", "native", "native", 0, "gnn_fast", "accuracy", 0.6),
        ("sp", "gnn_pretrained_fast", "native", "native", 0, "gnn_pretrained_fast", "mba", 0.8),
        ("sp", "pca", "flat", "majority", 0, "pca", "mba", 0.2),
        ("sp", "pca", "flat", "majority", 1, "pca", "mba", 0.4),
        ("sp", "pca", "flat", "calibrated", 0, "calibrated-pca", "mba", 0.3),
        ("sp", "pca", "flat", "majority", 0, "pca", "mba_positive", 0.9),  # not a figure metric
        ("sp", "spatial_avg", "flat", "majority", 0, "spatial_avg", "mba", np.nan),  # no value: left out
        ("sp", "true_labels", "native", "native", 0, "true_labels", "mba", 1.0),  # a control, not an arm
        ("sp", "scvi", "flat", "majority", 0, "scvi", "mba", 0.9),  # not an arm
        ("other", "pca", "flat", "majority", 0, "pca", "mba", 0.6),  # not a spatial group
        ("other", "gnn_fast", "native", "native", 0, "gnn_fast", "skipped: needs spatial coordinates", np.nan),
    ]
    return pd.DataFrame(rows, columns=["group", "method", "index", "transfer", "seed", "reported_as", "metric", "value"])


def test_method_arms_by_plugin():
    assert method_arms(METHODS) == {"pca": "pca", "spatial_avg": "spatial_avg", "gnn_fast": "gnn",
                                    "gnn_pretrained_fast": "gnn_pretrained"}


def test_arm_values_and_means():
    values = arm_values(summary(), method_arms(METHODS), ["sp"])
    # (a) pca's two shown names, (c) pretrained, (d) not pretrained; metrics accuracy then mba, seeds in order
    assert values[["arm", "shown", "seed", "metric", "value"]].values.tolist() == [
        ["pca", "calibrated-pca", 0, "mba", 0.3],
        ["pca", "pca", 0, "mba", 0.2],
        ["pca", "pca", 1, "mba", 0.4],
        ["gnn_pretrained", "gnn_pretrained_fast", 0, "mba", 0.8],
        ["gnn", "gnn_fast", 0, "accuracy", 0.6],
        ["gnn", "gnn_fast", 0, "mba", 0.5],
        ["gnn", "gnn_fast", 1, "mba", 0.7],
    ]
    assert set(values["group"]) == {"sp"}
    means = arm_means(values).set_index(["shown", "metric"])
    assert means.loc[("pca", "mba"), "mean"] == pytest.approx(0.3)
    assert means.loc[("pca", "mba"), "sd"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert means.loc[("gnn_fast", "mba"), "mean"] == pytest.approx(0.6)
    assert means.loc[("gnn_fast", "mba"), "n_seeds"] == 2
    assert means.loc[("gnn_pretrained_fast", "mba"), "n_seeds"] == 1 and np.isnan(means.loc[("gnn_pretrained_fast", "mba"), "sd"])


def test_plot_spatial_methods_writes_a_png(tmp_path):
    path = tmp_path / "spatial_methods.png"
    plot_spatial_methods(summary(), path, method_arms(METHODS), ["sp"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    empty = tmp_path / "empty.png"
    plot_spatial_methods(summary(), empty, method_arms(METHODS), ["no_such_group"])
    assert empty.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
