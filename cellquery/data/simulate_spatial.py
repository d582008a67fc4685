"""Simulated spatial sections of hematopoietic tissue and a matching dissociated reference.

Built on the world of :mod:`cellquery.data.simulate` (same ``world_seed``: same
cell types, gene programmes, dispersions and study shifts; that module and its
outputs are untouched), with space added:

* Section ``s`` (one batch each): ``cells_per_section`` cells uniform on a
  square of side ``sqrt(cells_per_section * CELL_AREA)`` micrometres (one cell
  per :data:`CELL_AREA` um^2), ``obsm["spatial"]`` = (x, y).
* Domains (:data:`DOMAINS`, SpatialSSL's regions / layers): four bands across
  x with a wavy border, ``u = x / side + WAVE_AMPLITUDE sin(2 pi WAVE_CYCLES y / side + phase_s)``,
  domain ``floor(4 u)`` clipped to 0..3; the phase is drawn per section.
* Domain-dependent abundance: a cell in domain d has type t with probability
  ``a_t m_dt / sum_t' a_t' m_dt'`` (``a_t`` the type's abundance in
  :data:`cellquery.data.simulate.CELL_TYPES`, ``m_dt`` the domain's
  multiplier in :data:`DOMAINS`, 1 when not listed); exported by
  :func:`domain_type_probabilities`.
* Type programme as in :mod:`cellquery.data.simulate`: recipe (trajectory
  position for progenitors) with jittered weights, base profile, study and
  section (batch) shifts, type library size.
* Niche signal: the log-mean of cell c gains ``niche_strength sum_l f_cl N_l``
  where ``f_cl`` is the fraction of c's neighbours within ``niche_radius``
  (same section, radius graph of :mod:`cellquery.spatial.graph`) whose type
  belongs to lineage group l (:data:`NICHE_GROUPS`: erythroid, myeloid,
  lymphoid, progenitor) and ``N_l`` a niche programme of
  :data:`NICHE_GENES` up-regulated genes (log-fold changes
  ``|N(NICHE_LFC, (NICHE_LFC/4)^2)|``, drawn from ``world_seed`` alone).
  ``obsm["niche_composition"]`` holds ``f_c`` (columns in NICHE_GROUPS order).
* Counts: negative binomial as in :mod:`cellquery.data.simulate`, in chunks.

Section cells are named ``<section>_s<seed>_c<index>``; obs ``cell_type``,
``cell_ontology_id``, ``domain``, ``section``, ``study``, ``donor`` (= the
section, so batch-aware methods treat sections as batches).

The dissociated reference (:func:`simulate_dissociated_reference`) is drawn
from the same tissue model (its own seed and study, so its own sections,
niches and batch shifts), then loses its coordinates and the cells of
``exclude_types``: those types appear in the query sections only (negative
types). Its cells keep the niche signal of the tissue they came from.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cellquery.data.simulate import (
    CELL_TYPES,
    CHUNK_CELLS,
    JITTER_SD,
    LIBRARY_MEDIAN,
    LIBRARY_SD,
    LINEAGES,
    TYPE_NAMES,
    _batch_shift,
    _build_world,
    _check_int,
    _chunk_counts,
    _crc,
    _place_cells,
    _resolve_types,
    _stack_csr,
)
from cellquery.errors import InputError

CELL_AREA = 100.0  # um^2 per cell: ~10 um between cell centres
WAVE_AMPLITUDE = 0.06
WAVE_CYCLES = 1.5
NICHE_GROUPS: tuple[str, ...] = (*LINEAGES, "progenitor")
NICHE_GENES = 25
NICHE_LFC = 1.5
DEFAULT_EXCLUDE = ("plasma cell", "erythroblast")  # reference lacks them: negative types of the sections

# domain -> {cell type: abundance multiplier}; types not listed keep multiplier 1
DOMAINS: dict[str, dict[str, float]] = {
    "follicle": {"naive B cell": 12.0, "memory B cell": 10.0, "CD4-positive, alpha-beta memory T cell": 1.5},
    "T zone": {
        "naive thymus-derived CD4-positive, alpha-beta T cell": 4.0,
        "naive thymus-derived CD8-positive, alpha-beta T cell": 4.0,
        "conventional dendritic cell": 6.0,
        "plasmacytoid dendritic cell": 6.0,
    },
    "medulla": {
        "plasma cell": 40.0,
        "CD14-positive monocyte": 3.0,
        "non-classical monocyte": 4.0,
        "CD8-positive, alpha-beta memory T cell": 2.0,
        "natural killer cell": 2.5,
    },
    "marrow niche": {
        "hematopoietic stem cell": 25.0,
        "hematopoietic multipotent progenitor cell": 12.0,
        "megakaryocyte-erythroid progenitor cell": 12.0,
        "granulocyte monocyte progenitor cell": 12.0,
        "common lymphoid progenitor": 20.0,
        "erythroblast": 15.0,
    },
}
DOMAIN_NAMES: tuple[str, ...] = tuple(DOMAINS)


def domain_type_probabilities(types: Sequence[int] | None = None) -> np.ndarray:
    """(domains x types) probability of each type (index into CELL_TYPES, all or ``types``) in each domain."""
    types = np.arange(len(CELL_TYPES)) if types is None else np.asarray(types, dtype=int)
    base = np.array([CELL_TYPES[t].abundance for t in types])
    probs = np.array([[base[i] * DOMAINS[d].get(TYPE_NAMES[t], 1.0) for i, t in enumerate(types)] for d in DOMAIN_NAMES])
    return probs / probs.sum(axis=1, keepdims=True)


def niche_programmes(world_seed: int, n_genes: int) -> np.ndarray:
    """(NICHE_GROUPS x genes) log-fold changes of the niche programmes (world_seed alone)."""
    rng = np.random.default_rng([world_seed, _crc("niche")])
    out = np.zeros((len(NICHE_GROUPS), n_genes))
    for g in range(len(NICHE_GROUPS)):
        genes = rng.choice(n_genes, size=NICHE_GENES, replace=False)
        out[g, genes] = np.abs(rng.normal(NICHE_LFC, NICHE_LFC / 4.0, NICHE_GENES))
    return out


def _niche_group_of_type() -> np.ndarray:
    return np.array([NICHE_GROUPS.index(t.lineage) for t in CELL_TYPES], dtype=int)


def neighbour_composition(coords: np.ndarray, type_idx: np.ndarray, radius: float, sections=None) -> np.ndarray:
    """Fraction of each cell's neighbours within ``radius`` (same section) in each niche group (0 without neighbours)."""
    from cellquery.spatial.graph import radius_graph

    graph = radius_graph(coords, radius, sections)
    groups = _niche_group_of_type()[type_idx]
    onehot = sp.csr_matrix((np.ones(len(groups)), (np.arange(len(groups)), groups)), shape=(len(groups), len(NICHE_GROUPS)))
    counts = np.asarray((graph @ onehot).todense())
    degree = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, degree, out=np.zeros_like(counts), where=degree > 0)


def _section(
    world, niche: np.ndarray, section: str, study: str, n: int, types: np.ndarray, *, seed: int, world_seed: int,
    niche_radius: float, niche_strength: float, study_effect: float, section_effect: float,
):
    n_genes = world.base.size
    rng = np.random.default_rng([seed, _crc("spatial"), _crc(section)])
    side = float(np.sqrt(n * CELL_AREA))
    coords = rng.uniform(0.0, side, (n, 2))
    phase = rng.uniform(0.0, 2 * np.pi)
    u = coords[:, 0] / side + WAVE_AMPLITUDE * np.sin(2 * np.pi * WAVE_CYCLES * coords[:, 1] / side + phase)
    domain = np.clip(np.floor(len(DOMAIN_NAMES) * u), 0, len(DOMAIN_NAMES) - 1).astype(int)
    probs = domain_type_probabilities(types)
    draw = rng.random(n)
    type_idx = types[(draw[:, None] > np.cumsum(probs[domain], axis=1)).sum(axis=1).clip(max=len(types) - 1)]
    weights, _ = _place_cells(type_idx, world.recipes, rng)
    weights *= np.exp(rng.normal(0.0, JITTER_SD, weights.shape))

    study_shift, study_lib = _batch_shift(world_seed, n_genes, "study:" + study, study_effect)
    section_shift, section_lib = _batch_shift(world_seed, n_genes, "section:" + section, section_effect)
    offset = world.base + study_shift + section_shift
    log_library = np.log(LIBRARY_MEDIAN) + 0.5 * study_effect * study_lib + 0.5 * section_effect * section_lib
    library = np.exp(log_library + rng.normal(0.0, LIBRARY_SD, n)) * world.type_library[type_idx]

    composition = neighbour_composition(coords, type_idx, niche_radius)
    # the niche programmes as extra rows of the programme matrix, weighted by niche_strength * f_c
    niche_world = dataclasses.replace(world, programs=np.vstack([world.programs, niche]))
    all_weights = np.hstack([weights, niche_strength * composition])
    gamma_rng = np.random.default_rng([seed, _crc("spatial-gamma"), _crc(section)])
    poisson_rng = np.random.default_rng([seed, _crc("spatial-poisson"), _crc(section)])
    blocks = [
        _chunk_counts(niche_world, all_weights[s : s + CHUNK_CELLS], library[s : s + CHUNK_CELLS], offset, gamma_rng, poisson_rng)
        for s in range(0, n, CHUNK_CELLS)
    ]
    obs = pd.DataFrame(
        {
            "cell_type": np.array(TYPE_NAMES, dtype=object)[type_idx],
            "cell_ontology_id": np.array([t.ontology_id for t in CELL_TYPES], dtype=object)[type_idx],
            "domain": np.array(DOMAIN_NAMES, dtype=object)[domain],
            "section": section,
            "study": study,
            "donor": section,
        },
        index=[f"{section}_s{seed}_c{i + 1:06d}" for i in range(n)],
    )
    return blocks, obs, coords, composition


def simulate_sections(
    cells_per_section: int,
    *,
    sections: Sequence[str] = ("section1", "section2"),
    study: str = "spatial",
    seed: int = 0,
    world_seed: int = 0,
    n_genes: int = 550,
    niche_radius: float = 20.0,
    niche_strength: float = 1.0,
    study_effect: float = 0.5,
    section_effect: float = 0.15,
) -> ad.AnnData:
    """Spatial sections (model: module docstring): counts, ``obsm["spatial"]``, domains, niche composition."""
    cells_per_section = _check_int("cells_per_section", cells_per_section, 1)
    n_genes = _check_int("n_genes", n_genes, 100)
    if isinstance(sections, str) or not sections or len(set(sections)) != len(sections):
        raise InputError(f"simulate_sections.sections: expected a list of unique section names, got {sections!r}")
    for field, value in (("niche_radius", niche_radius), ("niche_strength", niche_strength),
                         ("study_effect", study_effect), ("section_effect", section_effect)):
        if not np.isfinite(value) or value < 0:
            raise InputError(f"simulate_sections.{field}: expected a finite number >= 0, got {value!r}")
    world = _build_world(int(world_seed), n_genes)
    niche = niche_programmes(int(world_seed), n_genes)
    types = np.arange(len(CELL_TYPES))
    blocks, obs_parts, coords, compositions = [], [], [], []
    for section in sections:
        b, o, c, f = _section(
            world, niche, str(section), str(study), cells_per_section, types, seed=int(seed), world_seed=int(world_seed),
            niche_radius=niche_radius, niche_strength=niche_strength, study_effect=study_effect, section_effect=section_effect,
        )
        blocks.extend(b), obs_parts.append(o), coords.append(c), compositions.append(f)
    obs = pd.concat(obs_parts)
    obs["cell_type"] = pd.Categorical(obs["cell_type"], categories=list(TYPE_NAMES))
    obs["domain"] = pd.Categorical(obs["domain"], categories=list(DOMAIN_NAMES))
    for col in ("section", "study", "donor"):
        obs[col] = pd.Categorical(obs[col], categories=list(dict.fromkeys(obs[col])))
    var = pd.DataFrame(index=[f"gene{g + 1:05d}" for g in range(n_genes)])
    adata = ad.AnnData(X=_stack_csr(blocks, n_genes), obs=obs, var=var)
    adata.obsm["spatial"] = np.vstack(coords)
    adata.obsm["niche_composition"] = np.vstack(compositions)
    adata.uns["simulation"] = {
        "kind": "spatial sections",
        "cells_per_section": cells_per_section,
        "sections": [str(s) for s in sections],
        "study": str(study),
        "seed": int(seed),
        "world_seed": int(world_seed),
        "n_genes": n_genes,
        "niche_radius": float(niche_radius),
        "niche_strength": float(niche_strength),
        "study_effect": float(study_effect),
        "section_effect": float(section_effect),
        "domains": list(DOMAIN_NAMES),
        "niche_groups": list(NICHE_GROUPS),
    }
    return adata


def simulate_dissociated_reference(
    cells_per_section: int,
    *,
    sections: Sequence[str] = ("reference1", "reference2"),
    study: str = "dissociated",
    exclude_types: Sequence[str] = DEFAULT_EXCLUDE,
    seed: int = 1,
    **kwargs,
) -> ad.AnnData:
    """A dissociated reference: sections of the same tissue without coordinates or the ``exclude_types`` cells.

    Fewer than ``len(sections) * cells_per_section`` cells remain (the excluded
    types' cells are dropped); ``obs["domain"]`` is kept as the tissue region
    the cell came from (not something a dissociated atlas would know).
    """
    keep_types = _resolve_types(exclude_types, None)
    adata = simulate_sections(cells_per_section, sections=sections, study=study, seed=seed, **kwargs)
    keep = np.isin(adata.obs["cell_type"].to_numpy(), np.array(TYPE_NAMES, dtype=object)[keep_types])
    adata = adata[keep].copy()
    del adata.obsm["spatial"], adata.obsm["niche_composition"]
    adata.obs["cell_type"] = adata.obs["cell_type"].cat.remove_unused_categories()
    adata.uns["simulation"] = {**adata.uns["simulation"], "kind": "dissociated reference",
                               "exclude_types": [str(t) for t in exclude_types]}
    return adata
