"""Neighbourhood-averaged expression (one graph-convolution step, no training), then PCA.

Each query cell's log-normalised profile over the group's genes is replaced by
the mean of its own and its radius neighbours' profiles in its section
(``D^-1 (A + I) X``, :func:`cellquery.spatial.embed.neighbourhood_average`,
radius and section from the group's ``spatial`` settings). Cells without
coordinates (a dissociated reference) have no graph and keep their own
profile. PCA is then fitted on the (averaged) reference and applied to both,
as :mod:`cellquery.embed.pca`. ``hops`` repeats the averaging step.
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad
import numpy as np

from cellquery.embed.pca import dense, fit_project
from cellquery.errors import InputError
from cellquery.spatial.embed import neighbourhood_average
from cellquery.spatial.settings import section_graph, spatial_settings

# "spatial": needs coordinates (obsm["spatial"]) in the group's query: skipped on groups without spatial settings
REQUIRES: tuple[str, ...] = ("spatial",)


def averaged_expression(adata: ad.AnnData, genes: Sequence[str], settings, hops: int = 1) -> np.ndarray:
    """The cells' expression of ``genes`` averaged ``hops`` times over their section's radius graph."""
    x = dense(adata[:, list(genes)].X)
    graph = section_graph(adata, settings)
    for _ in range(hops):
        x = neighbourhood_average(x, graph, "mean")
    return x.astype(np.float32)


def embed(
    reference: ad.AnnData, query: ad.AnnData, genes: Sequence[str], *, seed: int = 0, n_comps: int = 30, hops: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and query embeddings of the neighbourhood-averaged expression (``seed`` has no effect)."""
    if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0:
        raise InputError(f"spatial_avg: hops must be an integer >= 0, got {hops!r}")
    settings = spatial_settings(query, "query")
    ref_x = averaged_expression(reference, genes, settings, hops)
    qry_x = averaged_expression(query, genes, settings, hops)
    return tuple(fit_project(ref_x, [ref_x, qry_x], n_comps))
