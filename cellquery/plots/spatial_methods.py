"""Figure: the four cell embeddings of the spatial comparison (SpatialSSL), accuracy and MBA per run over seeds.

The arms, by their plugin (whatever a config names the method):
(a) ``pca`` expression PCA (no space), (b) ``spatial_avg`` neighbourhood-averaged
expression (one graph-convolution step, no training), (c) ``gnn_pretrained`` the
graph network pretrained by masked expression and fine-tuned, (d) ``gnn`` the
same network fine-tuned only. One row of panels per spatial group, one panel per
metric; each shown name (``reported_as``: an embedding may run under several
transfers) is one column of points, one per seed, with its mean as a bar.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cellquery.plots import distinct_colours, save_message_png, save_png, shown_names

# plugin -> (letter, description), in the comparison's order
ARMS = {
    "pca": ("a", "expression PCA"),
    "spatial_avg": ("b", "neighbourhood average"),
    "gnn_pretrained": ("c", "GNN, pretrained"),
    "gnn": ("d", "GNN, not pretrained"),
}
METRICS = {"accuracy": "accuracy", "mba": "MBA (mean of positive and negative types)"}
COLUMNS = ["group", "arm", "shown", "seed", "metric", "value"]


def method_arms(methods: Mapping[str, Mapping]) -> dict[str, str]:
    """Config ``methods`` -> {method name: arm plugin} for the methods whose embedding or predictor is an arm."""
    return plugin_arms({name: spec.get("embedding", spec.get("predictor")) for name, spec in methods.items()})


def plugin_arms(plugins: Mapping[str, str]) -> dict[str, str]:
    """{method name: plugin} -> the same for the methods whose plugin is an arm."""
    return {name: plugin for name, plugin in plugins.items() if plugin in ARMS}


def arm_label(plugin: str, shown: str) -> str:
    """Tick label of a shown name of an arm, e.g. ``(c) gnn_pretrained_fast`` over ``GNN, pretrained``."""
    letter, description = ARMS[plugin]
    return f"({letter}) {shown}\n{description}"


def arm_values(summary: pd.DataFrame, arms: Mapping[str, str], groups: Iterable[str], metrics: Iterable[str] = tuple(METRICS)) -> pd.DataFrame:
    """The rows of ``summary`` for the arms' methods on ``groups``: columns :data:`COLUMNS`.

    ``arms``: method -> arm plugin (:func:`method_arms`). Skipped runs (metric
    ``skipped: ...``) and missing values are left out. Rows are ordered by group
    (as given), arm (a-d), shown name, metric and seed.
    """
    groups, metrics = list(groups), list(metrics)
    rows = summary[summary["group"].isin(groups) & summary["method"].isin(list(arms)) & summary["metric"].isin(metrics)]
    rows = rows[rows["value"].notna()]
    out = pd.DataFrame({
        "group": rows["group"].astype(str), "arm": rows["method"].map(arms), "shown": shown_names(rows),
        "seed": rows["seed"].astype(int), "metric": rows["metric"].astype(str), "value": rows["value"].astype(float),
    })
    order = {"group": {g: i for i, g in enumerate(groups)}, "arm": {a: i for i, a in enumerate(ARMS)},
             "metric": {m: i for i, m in enumerate(metrics)}}
    key = lambda column: column.map(order[column.name]) if column.name in order else column  # noqa: E731
    return out.sort_values(["group", "arm", "shown", "metric", "seed"], key=key).reset_index(drop=True)[COLUMNS]


def arm_means(values: pd.DataFrame) -> pd.DataFrame:
    """Per group, arm, shown name and metric of :func:`arm_values`: ``mean``, ``sd`` (ddof 1; NaN for one seed), ``n_seeds``."""
    stats = values.groupby(["group", "arm", "shown", "metric"], sort=False)["value"].agg(
        mean="mean", sd=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan, n_seeds="count")
    return stats.reset_index()


def plot_spatial_methods(summary: pd.DataFrame, path, arms: Mapping[str, str], groups: Iterable[str]) -> None:
    """Accuracy and MBA of the arms (a)-(d) on each spatial group: a point per seed, the mean as a bar."""
    groups = list(groups)
    values = arm_values(summary, arms, groups)
    if values.empty:
        save_message_png(path, "no spatial group with (a)-(d) runs")
        return
    means = arm_means(values)
    colours = distinct_colours(values["shown"])
    shown_groups = [g for g in groups if (values["group"] == g).any()]
    n_names = max(values[values["group"] == g]["shown"].nunique() for g in shown_groups)
    fig, axes = plt.subplots(len(shown_groups), len(METRICS), figsize=(max(4.0, 1.15 * n_names + 1.2) * len(METRICS), 3.8 * len(shown_groups)),
                             squeeze=False, layout="constrained")
    jitter = np.random.default_rng(0)
    for axs, group in zip(axes, shown_groups):
        mine = values[values["group"] == group]
        names = list(dict.fromkeys(mine["shown"]))  # arm order (a)-(d), then name
        arm_of = dict(zip(mine["shown"], mine["arm"]))
        for ax, (metric, title) in zip(axs, METRICS.items()):
            for x, name in enumerate(names):
                points = mine[(mine["shown"] == name) & (mine["metric"] == metric)]
                if points.empty:
                    continue
                ax.scatter(x + jitter.uniform(-0.12, 0.12, len(points)), points["value"], s=28, color=colours[name],
                           edgecolor="black", linewidth=0.5, zorder=3)
                mean = means[(means["group"] == group) & (means["shown"] == name) & (means["metric"] == metric)]["mean"].iloc[0]
                ax.hlines(mean, x - 0.3, x + 0.3, color=colours[name], linewidth=2.5, zorder=2)
                ax.text(x + 0.32, mean, f"{mean:.2f}", va="center", fontsize=7)
            ax.set_xticks(range(len(names)), [arm_label(arm_of[n], n) for n in names], fontsize=7, rotation=30, ha="right")
            ax.set_xlim(-0.6, len(names) - 0.2)
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3, axis="y")
            n_seeds = int(mine["seed"].nunique())
            ax.set_title(f"{group}: {title}\n(points: {n_seeds} seed(s); bar: mean)", fontsize=8)
    save_png(fig, path)
