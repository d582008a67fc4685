"""Fig. 2a of the Cell BLAST paper (Cao et al. 2020): MAP vs Seurat alignment score per method."""

from __future__ import annotations

import pandas as pd

from cellquery.plots import colour_handles, distinct_colours, group_panels, legend, save_png, shown_names

AXES = {"map": "map", "seurat_alignment": "sas"}  # summary metric -> column of the per-run table


def _per_run(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per embedding run that has both metrics: group, shown, colour_of, seed, map, sas.

    MAP and Seurat alignment score an embedding, not a transfer: every run setting that
    searches one embedding (``calibrated-pca``, ``conformal-pca`` and ``pca`` are the
    transfers of method ``pca``) carries the same two values, so such runs are one point,
    ``shown`` as the method followed by the other names (``pca (= calibrated-pca,
    conformal-pca)``) and coloured as the method (``colour_of``), or as the first of the
    names where the method is not itself a shown name.
    """
    columns = ["group", "shown", "colour_of", "seed", *AXES.values()]
    part = summary[summary["metric"].isin(list(AXES))]
    if not len(part):
        return pd.DataFrame(columns=columns)
    part = part.assign(name=shown_names(part), metric=part["metric"].map(AXES), method=part["method"].astype(str))
    labels = {}
    for (group, method), names in part.groupby(["group", "method"])["name"]:
        names = sorted(set(names))
        first = method if method in names else names[0]
        others = [n for n in names if n != first]
        labels[group, method] = (f"{first} (= {', '.join(others)})" if others else first, first)
    wide = (
        part.pivot_table(index=["group", "method", "seed"], columns="metric", values="value")
        .reset_index()
    )
    for column in AXES.values():
        if column not in wide:
            wide[column] = float("nan")
    keys = list(zip(wide["group"], wide["method"]))
    wide["shown"] = [labels[key][0] for key in keys]
    wide["colour_of"] = [labels[key][1] for key in keys]
    return wide.dropna(subset=list(AXES.values()))[columns]


def plot_map_vs_alignment(summary: pd.DataFrame, path) -> None:
    """One panel per group; one point per embedding (mean over seeds; see :func:`_per_run`).

    x: Seurat alignment score (metric ``seurat_alignment``), y: MAP (metric
    ``map``); error bars are the standard deviation over seeds. A run is named
    by ``reported_as`` where the summary has that column, else by ``method``.
    """
    wide = _per_run(summary)
    groups = sorted(wide["group"].unique())
    fig, axes = group_panels(groups)
    colours = distinct_colours(shown_names(summary))  # the same colours in every figure of the summary
    for ax, group in zip(axes, groups):
        stats = wide[wide["group"] == group].groupby(["shown", "colour_of"]).agg(
            sas=("sas", "mean"), sas_sd=("sas", "std"), map=("map", "mean"), map_sd=("map", "std")
        )
        for (name, colour_of), row in stats.iterrows():
            ax.errorbar(
                row["sas"], row["map"], xerr=row["sas_sd"] if pd.notna(row["sas_sd"]) else None,
                yerr=row["map_sd"] if pd.notna(row["map_sd"]) else None, fmt="o", color=colours[colour_of],
                markeredgecolor="black", markeredgewidth=0.4, capsize=2, label=name,
            )
        ax.set(title=str(group), xlabel="Seurat alignment score", ylabel="Mean average precision")
        ax.grid(alpha=0.3)
    shown = dict(zip(wide["shown"], wide["colour_of"]))
    legend(fig, colour_handles({name: colours[shown[name]] for name in sorted(shown)}, shown, linestyle=""), "method")
    save_png(fig, path)
