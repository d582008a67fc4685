"""Figure: one section of each spatial group coloured by true type, each run's predicted type, rejected cells.

One row per spatial group (its first section, first seed): the first panel
colours the cells by their true type, each further panel by one run's
prediction, with ``rejected`` cells as black and ``ambiguous`` as grey crosses; types keep
one colour across panels (query types absent from the reference included).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cellquery.plots import distinct_colours, legend, save_message_png, save_png

SPECIAL = {"rejected": (0.0, 0.0, 0.0, 1.0), "ambiguous": (0.6, 0.6, 0.6, 1.0)}


def plot_spatial_sections(rows: list[dict], path) -> None:
    """``rows``: one per group, ``{"group", "section", "coords" (cells x 2), "truth", "runs": {name: labels}}``."""
    if not rows:
        save_message_png(path, "no spatial group")
        return
    types = sorted({str(t) for r in rows for t in r["truth"]} | {str(t) for r in rows for p in r["runs"].values() for t in p} - set(SPECIAL))
    colours = {**distinct_colours(types), **SPECIAL}
    width = 1 + max(len(r["runs"]) for r in rows)
    n_entries = len(types) + len(SPECIAL)
    # the legend goes below the panels (rows of 4 entries): on the right its long type names took the panels' width
    legend_height = 0.25 * (1 + -(-n_entries // 4))
    fig, axes = plt.subplots(len(rows), width, figsize=(max(3.2 * width, 11), 3.2 * len(rows) + legend_height),
                             squeeze=False, layout="constrained")
    for axs, row in zip(axes, rows):
        panels = [("true type", row["truth"]), *row["runs"].items()]
        xy = np.asarray(row["coords"])
        for ax, (title, labels) in zip(axs, panels):
            labels = pd.Series(labels).astype(str).to_numpy()
            typed = ~np.isin(labels, list(SPECIAL))
            ax.scatter(xy[typed, 0], xy[typed, 1], c=[colours[label] for label in labels[typed]], s=6, linewidths=0)
            for label in SPECIAL:  # rejected and ambiguous cells as crosses
                mask = labels == label
                ax.scatter(xy[mask, 0], xy[mask, 1], color=colours[label], marker="x", s=8, linewidths=0.7)
            rejected = np.mean(labels == "rejected")
            ax.set_title(f"{row['group']} {row['section']}\n{title}" + (f" ({rejected:.0%} rejected)" if title != "true type" else ""),
                         fontsize=8)
            ax.set_aspect("equal")
            ax.set_xticks([]), ax.set_yticks([])
        for ax in axs[len(panels):]:
            ax.axis("off")
    handles = [plt.Line2D([], [], marker="x" if t in SPECIAL else "o", linestyle="", color=colours[t], label=t)
               for t in [*types, *SPECIAL]]
    legend(fig, handles, "cell type", side="bottom")
    save_png(fig, path)
