"""Figures of the benchmark (one module per figure) and what they share.

Every figure names a run by :func:`shown_names` (the ``reported_as`` column of
the result tables, e.g. ``calibrated-pca``, or the plain method name in tables
without it), colours the names with :func:`distinct_colours` and lays out one
panel per dataset group with :func:`group_panels`.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cellquery.io import atomic_path

MARKERS = "osD^vP*Xph<>"


def save_png(fig, path, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` as PNG atomically (nothing is left behind on failure) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def shown_names(table: pd.DataFrame) -> pd.Series:
    """The name each row's run is shown under.

    The ``reported_as`` column where the table has it and the row fills it
    (``<report_as>-<method>`` for a transfer reported as its own method, e.g.
    ``calibrated-pca``), else the ``method`` column, so that tables written
    without ``reported_as`` still plot.
    """
    names = table["method"].astype(str)
    if "reported_as" not in table:
        return names
    given = table["reported_as"]
    filled = given.notna() & (given.astype(str) != "")
    return given.astype(str).where(filled, names)


def distinct_colours(names: Iterable[str]) -> dict[str, tuple[float, float, float, float]]:
    """Name -> RGBA colour; no two names share a colour, and a set of names always gets the same colours.

    The sorted names take matplotlib's qualitative colours in turn: the ten
    strong colours of ``tab20``, its ten light ones, then the twenty of
    ``tab20b``. Beyond those 40 names, evenly spaced colours of the ``turbo``
    colour map (still all different, but harder to tell apart).
    """
    unique = sorted({str(n) for n in names})
    tab20 = matplotlib.colormaps["tab20"].colors
    palette = [*tab20[0::2], *tab20[1::2], *matplotlib.colormaps["tab20b"].colors]
    if len(unique) > len(palette):
        palette = list(matplotlib.colormaps["turbo"](np.linspace(0.0, 1.0, len(unique))))
    return {name: matplotlib.colors.to_rgba(colour) for name, colour in zip(unique, palette)}


def run_colours(labels: Iterable[str], names: Iterable[str] | None = None) -> dict[str, tuple[float, float, float, float]]:
    """Colours of a figure's line or bar ``labels``, the same as every other figure's where it can.

    ``names`` are every name a run of the workflow is shown under (the summary's
    ``reported_as``, skipped runs too: the set the summary figures colour). Where
    every label is such a name, the labels take those names' colours, so a
    method has one colour in every figure; labels that tell apart several runs
    of one name (``pca / ivfpq``) get colours of their own (:func:`distinct_colours`).
    """
    labels = {str(label) for label in labels}
    names = None if names is None else {str(name) for name in names}
    palette = distinct_colours(names if names is not None and labels <= names else labels)
    return {label: palette[label] for label in sorted(labels)}


def distinct_markers(keys: Iterable) -> dict:
    """Key -> marker symbol, in sorted order of the keys (symbols repeat after 12 keys)."""
    return {key: MARKERS[i % len(MARKERS)] for i, key in enumerate(sorted(set(keys)))}


def group_panels(groups: list, panel_width: float = 4.2, height: float = 4.0, **subplots) -> tuple:
    """A figure with one panel per group in a row: ``(fig, axes)``.

    Without groups there is one panel, marked "no data". The layout is
    matplotlib's constrained layout, which leaves room for :func:`legend`.
    """
    n = max(1, len(groups))
    fig, axes = plt.subplots(1, n, figsize=(panel_width * n, height), squeeze=False, layout="constrained", **subplots)
    if not groups:
        mark_no_data(axes[0][0])
    return fig, axes[0]


def save_message_png(path, message: str) -> None:
    """A small figure holding ``message`` alone (a figure with nothing to draw), saved to ``path``."""
    fig, ax = plt.subplots(figsize=(4, 2), layout="constrained")
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    save_png(fig, path)


def mark_no_data(ax, title: str | None = None) -> None:
    """An empty panel saying "no data"."""
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    if title:
        ax.set_title(title)
    ax.set_axis_off()


def boxes(ax, values: pd.DataFrame, colours: dict, markers: dict | None = None) -> None:
    """One box per shown name (sorted), filled with its colour, and every value as a point.

    ``values`` has columns ``shown`` and ``value`` (and ``group`` when
    ``markers`` maps groups to marker symbols; points are then drawn with their
    group's marker).
    """
    names = sorted(values["shown"].unique())
    parts = ax.boxplot([values.loc[values["shown"] == n, "value"].to_numpy() for n in names],
                       showfliers=False, patch_artist=True, medianprops={"color": "black"})
    for box, name in zip(parts["boxes"], names):
        box.set(facecolor=colours[name], alpha=0.6)
    for i, name in enumerate(names, start=1):
        rows = values[values["shown"] == name]
        for group, sub in rows.groupby("group") if markers else [(None, rows)]:
            ax.scatter([i] * len(sub), sub["value"], s=12, zorder=3, color="white" if markers else "black",
                       marker=markers[group] if markers else "o", edgecolor="black", linewidth=0.5, alpha=0.8)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right", fontsize=8)
    ax.grid(alpha=0.3, axis="y")


def colour_handles(colours: dict, shown: Iterable[str], marker: str = "o", **line) -> list:
    """Legend entries for the names in ``shown``, coloured as in a :func:`distinct_colours` mapping."""
    present = set(shown)
    return [
        plt.Line2D([], [], color=c, marker=marker, label=str(name), **line) for name, c in colours.items() if name in present
    ]


def marker_handles(markers: dict, label=str, face: str = "black") -> list:
    """Legend entries, one per key of a :func:`distinct_markers` mapping (black outline, ``face`` inside)."""
    return [
        plt.Line2D([], [], color="black", markerfacecolor=face, marker=m, linestyle="", label=label(key))
        for key, m in markers.items()
    ]


def legend(fig, handles: list, title: str, side: str = "right") -> None:
    """A legend outside the panels: on the ``right`` (columns of at most 18 entries) or at the ``bottom`` (rows of 4)."""
    if not handles:
        return
    if side == "right":
        where, ncols = "outside right center", -(-len(handles) // 18)
    else:
        where, ncols = "outside lower center", min(4, len(handles))
    fig.legend(handles=handles, title=title, loc=where, ncols=ncols, fontsize=8, title_fontsize=8, frameon=False)
