"""Niches of one run's predictions on a spatial group, scored against known regions (rule niches).

Every query cell's niche profile is the composition of the *predicted* types
(``rejected`` and ``ambiguous`` count as labels of their own) among itself
and its radius neighbours in its section; k-means on the profiles of all
sections together gives ``n_niches`` niches (:func:`cellquery.spatial.niche.niche_clusters`,
seeded with the run's seed), and ``niche_ari`` is their adjusted Rand index
against the query's known regions (``spatial.domain_key``, e.g. the simulated
domains). ``n_niches`` is a setting of the group, never chosen from the regions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.spatial.niche import niche_ari, niche_clusters
from cellquery.spatial.settings import SpatialSettings, section_graph


def run_niches(predictions: pd.DataFrame, query, settings: SpatialSettings, *, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Per-cell niches of a run (cell, section, prediction, niche, region) and its metrics (``niche_ari``).

    ``predictions`` has columns ``cell`` (query obs names) and ``prediction``;
    ``query`` is the group's preprocessed query (coordinates in ``obsm["spatial"]``).
    """
    cells = predictions["cell"].astype(str).to_numpy()
    missing = np.setdiff1d(cells, query.obs_names.to_numpy())
    if len(missing):
        raise InputError(f"predictions: cell {missing[0]!r} is not in the query ({len(missing)} missing)")
    query = query[cells]
    if "spatial" not in query.obsm:
        raise InputError("query: no coordinates (obsm['spatial']) on a spatial group")
    labels = predictions["prediction"].astype(str).to_numpy()
    niches = niche_clusters(labels, section_graph(query, settings), min(settings.n_niches, len(labels)), seed=seed)
    table = pd.DataFrame({
        "cell": cells,
        "section": query.obs[settings.section_key].astype(str).to_numpy(),
        "prediction": labels,
        "niche": niches,
    })
    metrics: dict[str, float] = {}
    if settings.domain_key is not None:
        if settings.domain_key not in query.obs:
            raise InputError(f"query: obs column {settings.domain_key!r} (spatial.domain_key) is missing")
        table["region"] = query.obs[settings.domain_key].astype(str).to_numpy()
        metrics["niche_ari"] = niche_ari(niches, table["region"])
    return table, metrics
