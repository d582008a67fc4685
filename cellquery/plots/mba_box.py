"""Fig. 2c of the Cell BLAST paper (Cao et al. 2020): MBA per method over every dataset group and seed.

Three panels (MBA on positive types, on negative types, and their mean), one
horizontal box per shown name (``reported_as``) over every run of every group,
index, transfer and seed, with every run as a point; methods are ranked by
their median MBA, best at the top, in all three panels. Controls (e.g. the
predictors of :mod:`cellquery.predictors.controls`, Open Problems' label
projection controls) are drawn grey and hatched and marked "(control)".
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from cellquery.plots import (
    distinct_colours, distinct_markers, group_panels, legend, mark_no_data, marker_handles, save_png, shown_names,
)

# metric -> (panel title, what the panel says when no run has the metric)
PANELS = {
    "mba_positive": ("MBA, positive types", "no positive types"),
    "mba_negative": ("MBA, negative types", "no negative types"),
    "mba": ("MBA (mean of both)", "no MBA"),
}
CONTROL_COLOUR = "0.8"


def method_order(values: pd.DataFrame) -> list[str]:
    """Shown names by median MBA (``metric == "mba"``), best first; names without MBA last; ties by name."""
    medians = values[values["metric"] == "mba"].groupby("shown")["value"].median()
    names = sorted(set(values["shown"]))
    return sorted(names, key=lambda n: (-medians[n] if n in medians.index else np.inf, n))


def tick_label(name: str, controls: Iterable[str]) -> str:
    """A method's tick label: its name, with "(control)" for a control."""
    return f"{name} (control)" if name in set(controls) else name


def method_boxes(ax, values: pd.DataFrame, order: list[str], colours: dict, markers: dict, controls: set) -> None:
    """One horizontal box per name of ``order`` at row ``i`` (top to bottom), every run as a point.

    ``values`` has columns ``shown``, ``group`` and ``value``; a name without
    values leaves its row empty, so rows line up across panels. Boxes take the
    name's colour, controls grey and hatched on a grey band; a point's marker
    is its group's.
    """
    jitter = np.random.default_rng(0)  # the same small vertical spread in every drawing
    for row, name in enumerate(order):
        if name in controls:  # a grey band: a control's constant score draws no visible box
            ax.axhspan(row - 0.5, row + 0.5, color="0.93", zorder=0, linewidth=0)
        own = values[values["shown"] == name]
        if own.empty:
            continue
        parts = ax.boxplot([own["value"].to_numpy()], positions=[row], orientation="horizontal", widths=0.6,
                           showfliers=False, patch_artist=True, medianprops={"color": "black"})
        control = name in controls
        parts["boxes"][0].set(facecolor=CONTROL_COLOUR if control else colours[name], alpha=0.7,
                              hatch="///" if control else None, edgecolor="0.35" if control else "black")
        for group, sub in own.groupby("group"):
            y = row + jitter.uniform(-0.18, 0.18, len(sub))
            ax.scatter(sub["value"], y, s=14, zorder=3, color="white", marker=markers[group], edgecolor="black", linewidth=0.5)
    ax.set_yticks(range(len(order)), [tick_label(n, controls) for n in order], fontsize=8)
    ax.set_ylim(len(order) - 0.5, -0.5)  # best at the top
    ax.set_xlim(-0.03, 1.03)
    ax.grid(alpha=0.3, axis="x")


def plot_mba_box(summary: pd.DataFrame, path, controls: Iterable[str] = ()) -> None:
    """Fig. 2c of the Cell BLAST paper: MBA on positive types, negative types and both, one box per method.

    Columns used: ``group``, ``method``, ``metric`` (``mba_positive``,
    ``mba_negative``, ``mba``), ``value`` and, if present, ``reported_as``
    (a run's shown name, :func:`cellquery.plots.shown_names`). ``controls``:
    shown names drawn as controls. A metric that no run has (e.g. no group
    has negative types) leaves its panel saying so ("no negative types");
    groups without such types while others have them are named under the
    panel ("no negative types: <group>"); without any MBA every panel says
    "no data".
    """
    controls = {str(c) for c in controls}
    part = summary[summary["metric"].isin(list(PANELS))].dropna(subset=["value"])
    part = part.assign(shown=shown_names(part))
    order = method_order(part)
    colours = distinct_colours(shown_names(summary))  # the same colours in every figure of the summary
    markers = distinct_markers(part["group"])
    fig, axes = group_panels(list(PANELS), panel_width=3.4, height=max(2.5, 0.36 * len(order) + 1.2), sharey=True)
    labelled = False
    for ax, (metric, (title, absent)) in zip(axes, PANELS.items()):
        values = part[part["metric"] == metric]
        if values.empty:
            mark_no_data(ax, title)
            if not part.empty:
                ax.texts[-1].set_text(absent)  # other MBA scores exist: say which types are missing
            continue
        method_boxes(ax, values, order, colours, markers, controls)
        lacking = sorted(set(part["group"]) - set(values["group"]))
        # groups whose query has no such types are named under the title, not drawn as 0
        ax.set(title=f"{title}\n({absent}: {', '.join(map(str, lacking))})" if lacking else title, xlabel="MBA")
        ax.tick_params(labelleft=not labelled)  # method names beside the first panel drawn
        labelled = True
    legend(fig, marker_handles(markers, face="white"), "group")
    save_png(fig, path)
