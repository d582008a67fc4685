"""A spatial group's settings (config ``groups.<name>.spatial``) as carried by its preprocessed AnnDatas.

Rule preprocess stores the group's ``spatial`` entry in ``uns["spatial"]`` of
the reference and the query; the spatial methods (embedding ``spatial_avg``,
predictors ``gnn`` and ``gnn_pretrained``) and rule niches read it from there.
Cells with ``obsm["spatial"]`` coordinates are joined to their neighbours
within ``radius`` in the same ``section_key`` section; a side without
coordinates (a dissociated reference) has no edges: every cell is its own
neighbourhood.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import scipy.sparse as sp

from cellquery.errors import InputError

SPATIAL_KEY = "spatial"  # obsm key of the coordinates, uns key of the settings


@dataclass(frozen=True)
class SpatialSettings:
    """``section_key`` (obs column of the sections), ``radius`` (coordinate units), niche settings."""

    section_key: str
    radius: float
    domain_key: str | None = None
    n_niches: int = 4

    @classmethod
    def from_config(cls, spec: Mapping | None) -> "SpatialSettings | None":
        if not spec:
            return None
        return cls(str(spec["section_key"]), float(spec["radius"]), spec.get("domain_key"), int(spec.get("n_niches", 4)))

    def as_uns(self) -> dict:
        out = {"section_key": self.section_key, "radius": self.radius, "n_niches": self.n_niches}
        return out if self.domain_key is None else {**out, "domain_key": self.domain_key}


def spatial_settings(adata, where: str = "data") -> SpatialSettings:
    """The settings stored in ``adata.uns["spatial"]``; an error when the group has none."""
    spec = adata.uns.get(SPATIAL_KEY)
    if not spec:
        raise InputError(f"{where}: no spatial settings (uns['spatial']); give the group spatial: {{section_key, radius}}")
    return SpatialSettings.from_config(dict(spec))


def has_coordinates(adata) -> bool:
    return SPATIAL_KEY in adata.obsm


def section_graph(adata, settings: SpatialSettings) -> sp.csr_matrix:
    """Radius graph of ``adata``'s cells within their sections; no edges when it has no coordinates."""
    from cellquery.spatial.graph import radius_graph

    if not has_coordinates(adata):
        return sp.csr_matrix((adata.n_obs, adata.n_obs))
    if settings.section_key not in adata.obs:
        raise InputError(f"obs column {settings.section_key!r} (spatial.section_key) is missing")
    coords = np.asarray(adata.obsm[SPATIAL_KEY], dtype=np.float64)[:, :2]
    return radius_graph(coords, settings.radius, adata.obs[settings.section_key].astype(str).to_numpy())


def spatial_problems(query, spec: Mapping | None) -> list[str]:
    """What a spatial group's query datasets lack (rule validate): coordinates, the section and region columns.

    ``query``: the group's loaded query datasets (objects with ``adata`` and
    ``where``, :class:`cellquery.validate.LoadedDataset`); ``spec``: the
    group's ``spatial`` entry (None: not a spatial group, no problems).
    """
    settings = SpatialSettings.from_config(spec)
    if settings is None:
        return []
    problems = []
    for dataset in query:
        adata = dataset.adata
        if SPATIAL_KEY not in adata.obsm:
            problems.append(f"{dataset.where}: obsm['spatial']: missing; a spatial group's query needs cell coordinates")
        else:
            coords = np.asarray(adata.obsm[SPATIAL_KEY])
            if coords.ndim != 2 or coords.shape[1] < 2 or not np.isfinite(coords[:, :2]).all():
                problems.append(f"{dataset.where}: obsm['spatial']: expected finite x, y per cell, got shape {coords.shape}")
        for key, role in ((settings.section_key, "spatial.section_key"), (settings.domain_key, "spatial.domain_key")):
            if key is not None and key not in adata.obs:
                problems.append(f"{dataset.where}: obs column {key!r} ({role}) is missing")
    return problems
