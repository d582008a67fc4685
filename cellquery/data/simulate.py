"""Simulated hematopoietic single-cell counts for the benchmark.

The generative model has two parts: a *world*, fixed by ``world_seed`` alone,
and the *cells* of one dataset, drawn with ``seed``. Datasets that share a
``world_seed`` share cell types, expression programs and batch effects, so one
can serve as the reference and another (other studies, other seed) as the
query.

World (``world_seed``; study and donor effects also from the study/donor name
through ``zlib.crc32``, so they do not depend on which other studies are
simulated and never on Python's salted ``hash``):

* Base profile: ``b_g ~ N(0, BASE_SD^2)`` log relative expression of gene g.
* Gene programs: each program k in :data:`PROGRAMS` picks ``size_k`` genes
  without replacement with probability proportional to
  ``exp(MARKER_BIAS * b_g)`` (markers lean to expressed genes); their log-fold changes are ``+|N(lfc_k, (lfc_k/4)^2)|``, negated
  for a fraction ``DOWN_FRACTION`` of them. Other genes: 0. ``P`` is the
  (programs x genes) matrix of log-fold changes.
* Cell types: 18 hematopoietic types (:data:`CELL_TYPES`) with real Cell
  Ontology ids. A type's *recipe* is a vector of program weights ``w_t``
  (e.g. CD8 memory T = lymphoid + T cell + CD8 + memory + 0.5 cytotoxic), so
  the log-mean programme of type t is ``b + w_t P``. Recipes follow the
  lineage tree, so close types (CD4 vs CD8 T, naive vs memory, naive vs
  memory B, the progenitors) differ by a few genes with small effects.
* Type-specific library size: ``log l_t ~ N(0, 0.2^2)``.
* Gene dispersion: ``phi_g = exp(N(log 0.15, 0.5^2))``.
* Study s (strong): gene-wise log-fold shift ``delta_sg ~ N(0, study_effect^2)``
  and capture efficiency ``log e_s ~ N(0, (study_effect/2)^2)``.
* Donor d nested in study (weaker): gene-wise shift
  ``delta_dg ~ N(0, donor_effect^2)``, library factor
  ``log e_d ~ N(0, (donor_effect/2)^2)`` and composition jitter
  ``log a_dt ~ N(0, COMPOSITION_SD^2)`` on the type abundances.

Differentiation trajectory. Progenitors sit on a branching tree of anchor
recipes: a trunk HSC -> MPP, three branches MPP -> MEP (erythroid), MPP -> GMP
(myeloid), MPP -> CLP (lymphoid), and an extension MEP -> erythroblast. A cell
at position ``u`` in [0, 1] along the segment A -> B has program weights
``(1 - u) w_A + u w_B`` (expression interpolates between the programmes).
Fate probabilities over :data:`LINEAGES`: ``pi`` (:data:`FATE_PRIOR`) on the
trunk, ``(1 - u) pi + u e_b`` on branch b, ``e_b`` on the erythroid
extension and for every terminally differentiated type (all mass on its
lineage). Positions by type: HSC trunk u ~ U(0, 0.7); MPP trunk u ~ U(0.7, 1)
or, with probability 1/2, a branch drawn from ``pi`` at u ~ U(0, 0.3);
MEP/GMP/CLP their branch at u ~ U(0.3, 1); erythroblast the extension at
u ~ U(0.2, 1).

Cells (``seed``). ``n_cells`` is split evenly over the donors of all
studies. For each donor, types are drawn i.i.d. from the donor's abundances
(:data:`CELL_TYPES` abundance x ``a_dt``, restricted to the included types,
renormalised). For cell c of type t:

* program weights ``W_c`` = recipe (or trajectory interpolation) with every
  non-zero weight multiplied by ``exp(N(0, JITTER_SD^2))``;
* log-mean ``m_cg = b_g + (W_c P)_g + delta_sg + delta_dg``, proportions
  ``p_cg = softmax_g(m_cg)``;
* library size ``L_c = LIBRARY_MEDIAN * l_t * e_s * e_d * exp(N(0, LIBRARY_SD^2))``
  (log-normal size factors);
* counts ``X_cg ~ Poisson(L_c p_cg G_cg)``, ``G_cg ~ Gamma(1/phi_g, phi_g)``:
  negative binomial with mean ``L_c p_cg`` and variance ``mu + phi_g mu^2``.

Counts are drawn in chunks of :data:`CHUNK_CELLS` cells and stacked as CSR,
so memory stays proportional to the output. Each donor has one generator for
the gamma draws and one for the Poisson draws, consumed in cell order, so the
result does not depend on the chunk size. Cells are named
``<donor>_s<seed>_c<index>``.

Difficulty (the defaults, reference studies 1-2 without two types, query
study 3; normalize_total + log1p, 1000 HVG, PCA 30 fitted on the reference,
15-NN vote): accuracy on the reference's types ranged 0.71-0.89 over
world_seed 0-5 (0.78 for world_seed 0); distinct types (monocytes, NK,
erythroblasts) map near perfectly, the close pairs do not.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cellquery.errors import InputError

LINEAGES: tuple[str, ...] = ("erythroid", "myeloid", "lymphoid")
FATE_PRIOR = np.array([0.25, 0.35, 0.40])  # trunk fate probabilities over LINEAGES

BASE_SD = 1.6
DOWN_FRACTION = 0.15
MARKER_BIAS = 0.25
JITTER_SD = 0.25
COMPOSITION_SD = 0.15
LIBRARY_MEDIAN = 2500.0
LIBRARY_SD = 0.35
CHUNK_CELLS = 4096
MIN_GENES = 500

# name -> (number of genes, mean |log-fold change|)
PROGRAMS: dict[str, tuple[int, float]] = {
    "stem": (60, 2.0),
    "hsc": (12, 1.0),
    "mpp": (12, 0.8),
    "erythroid": (80, 2.2),
    "mep": (15, 1.0),
    "myeloid": (80, 2.0),
    "gmp": (15, 1.0),
    "lymphoid": (60, 1.5),
    "clp": (15, 1.0),
    "erythroblast": (40, 1.5),
    "monocyte": (40, 1.5),
    "classical_monocyte": (12, 1.0),
    "nonclassical_monocyte": (15, 1.2),
    "dendritic": (30, 1.5),
    "cdc": (20, 1.2),
    "pdc": (35, 1.8),
    "t_cell": (40, 1.5),
    "cd4": (12, 1.1),
    "cd8": (12, 1.1),
    "naive_t": (8, 0.8),
    "memory": (12, 1.0),
    "cytotoxic": (30, 1.5),
    "nk": (30, 1.5),
    "b_cell": (40, 1.5),
    "naive_b": (8, 0.9),
    "memory_b": (10, 1.1),
    "plasma": (60, 2.2),
}


@dataclass(frozen=True)
class CellType:
    """One simulated cell type."""

    name: str  # Cell Ontology label
    ontology_id: str
    lineage: str  # one of LINEAGES, or "progenitor"
    abundance: float  # relative abundance (percent of cells)
    recipe: dict  # program -> weight


_LYM, _MYE = {"lymphoid": 1.0}, {"myeloid": 1.0}
CELL_TYPES: tuple[CellType, ...] = (
    CellType("hematopoietic stem cell", "CL:0000037", "progenitor", 0.4, {"stem": 1.0, "hsc": 1.0}),
    CellType("hematopoietic multipotent progenitor cell", "CL:0000837", "progenitor", 1.2, {"stem": 1.0, "mpp": 1.0}),
    CellType("megakaryocyte-erythroid progenitor cell", "CL:0000050", "progenitor", 1.2,
             {"stem": 0.5, "mpp": 0.3, "erythroid": 0.6, "mep": 1.0}),
    CellType("granulocyte monocyte progenitor cell", "CL:0000557", "progenitor", 1.2,
             {"stem": 0.5, "mpp": 0.3, "myeloid": 0.6, "gmp": 1.0}),
    CellType("common lymphoid progenitor", "CL:0000051", "progenitor", 0.5,
             {"stem": 0.5, "mpp": 0.3, "lymphoid": 0.6, "clp": 1.0}),
    CellType("erythroblast", "CL:0000765", "erythroid", 2.0, {"erythroid": 1.0, "erythroblast": 1.0}),
    CellType("CD14-positive monocyte", "CL:0001054", "myeloid", 17.0,
             {**_MYE, "monocyte": 1.0, "classical_monocyte": 1.0}),
    CellType("non-classical monocyte", "CL:0000875", "myeloid", 5.0,
             {**_MYE, "monocyte": 1.0, "nonclassical_monocyte": 1.0, "classical_monocyte": 0.2}),
    CellType("conventional dendritic cell", "CL:0000990", "myeloid", 2.0,
             {**_MYE, "dendritic": 1.0, "cdc": 1.0, "monocyte": 0.3}),
    CellType("plasmacytoid dendritic cell", "CL:0000784", "myeloid", 0.5,
             {"myeloid": 0.5, "lymphoid": 0.3, "dendritic": 1.0, "pdc": 1.0}),
    CellType("naive thymus-derived CD4-positive, alpha-beta T cell", "CL:0000895", "lymphoid", 18.0,
             {**_LYM, "t_cell": 1.0, "cd4": 1.0, "naive_t": 1.0}),
    CellType("CD4-positive, alpha-beta memory T cell", "CL:0000897", "lymphoid", 13.0,
             {**_LYM, "t_cell": 1.0, "cd4": 1.0, "memory": 1.0}),
    CellType("naive thymus-derived CD8-positive, alpha-beta T cell", "CL:0000900", "lymphoid", 9.0,
             {**_LYM, "t_cell": 1.0, "cd8": 1.0, "naive_t": 1.0}),
    CellType("CD8-positive, alpha-beta memory T cell", "CL:0000909", "lymphoid", 9.0,
             {**_LYM, "t_cell": 1.0, "cd8": 1.0, "memory": 1.0, "cytotoxic": 0.5}),
    CellType("natural killer cell", "CL:0000623", "lymphoid", 9.0,
             {**_LYM, "nk": 1.0, "cytotoxic": 1.0, "t_cell": 0.2}),
    CellType("naive B cell", "CL:0000788", "lymphoid", 7.0, {**_LYM, "b_cell": 1.0, "naive_b": 1.0}),
    CellType("memory B cell", "CL:0000787", "lymphoid", 3.6,
             {**_LYM, "b_cell": 1.0, "memory_b": 1.0, "memory": 0.3}),
    CellType("plasma cell", "CL:0000786", "lymphoid", 0.4, {"lymphoid": 0.6, "b_cell": 0.4, "plasma": 1.0}),
)
TYPE_NAMES: tuple[str, ...] = tuple(t.name for t in CELL_TYPES)
RARE_ABUNDANCE = 1.0  # percent; types below it are "rare"

_HSC, _MPP, _MEP, _GMP, _CLP, _ERY = range(6)  # indices of trajectory types in CELL_TYPES
_BRANCH_END = {0: _MEP, 1: _GMP, 2: _CLP}  # lineage index -> committed progenitor


def cell_type_table() -> pd.DataFrame:
    """The simulated cell types: name, Cell Ontology id, lineage, abundance (%), rare flag."""
    total = sum(t.abundance for t in CELL_TYPES)
    return pd.DataFrame(
        {
            "cell_type": TYPE_NAMES,
            "cell_ontology_id": [t.ontology_id for t in CELL_TYPES],
            "lineage": [t.lineage for t in CELL_TYPES],
            "abundance_percent": [100.0 * t.abundance / total for t in CELL_TYPES],
            "rare": [100.0 * t.abundance / total < RARE_ABUNDANCE for t in CELL_TYPES],
        }
    )


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


@dataclass
class _World:
    base: np.ndarray  # (genes,)
    programs: np.ndarray  # (programs, genes)
    recipes: np.ndarray  # (types, programs)
    type_library: np.ndarray  # (types,)
    shape: np.ndarray  # gamma shape 1/phi, (genes,)
    scale: np.ndarray  # gamma scale phi, (genes,)


def _build_world(world_seed: int, n_genes: int) -> _World:
    rng = np.random.default_rng([world_seed, _crc("world")])
    base = rng.normal(0.0, BASE_SD, n_genes)
    phi = np.exp(rng.normal(np.log(0.15), 0.5, n_genes))
    programs = np.zeros((len(PROGRAMS), n_genes))
    pick = np.exp(MARKER_BIAS * (base - base.max()))
    pick /= pick.sum()
    for k, (size, lfc) in enumerate(PROGRAMS.values()):
        genes = rng.choice(n_genes, size=size, replace=False, p=pick)
        effect = np.abs(rng.normal(lfc, lfc / 4.0, size))
        effect[rng.random(size) < DOWN_FRACTION] *= -1.0
        programs[k, genes] = effect
    names = list(PROGRAMS)
    recipes = np.zeros((len(CELL_TYPES), len(PROGRAMS)))
    for t, ctype in enumerate(CELL_TYPES):
        for prog, weight in ctype.recipe.items():
            recipes[t, names.index(prog)] = weight
    type_library = np.exp(rng.normal(0.0, 0.2, len(CELL_TYPES)))
    return _World(base, programs, recipes, type_library, 1.0 / phi, phi)


def _batch_shift(world_seed: int, n_genes: int, key: str, sd: float) -> tuple[np.ndarray, float]:
    """Gene-wise log-fold shift and log library factor of one study/donor."""
    rng = np.random.default_rng([world_seed, _crc("batch"), _crc(key)])
    gene_shift = rng.normal(0.0, 1.0, n_genes) * sd
    log_library = rng.normal(0.0, 1.0)
    return gene_shift, log_library


def _donor_composition(world_seed: int, donor: str, types: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng([world_seed, _crc("composition"), _crc(donor)])
    jitter = np.exp(rng.normal(0.0, COMPOSITION_SD, len(CELL_TYPES)))
    weights = np.array([t.abundance for t in CELL_TYPES]) * jitter
    weights = weights[types]
    return weights / weights.sum()


def _place_cells(type_idx: np.ndarray, recipes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Program weights (before jitter) and fate probabilities of each cell.

    Mature types take their recipe and a one-hot fate; progenitors and
    erythroblasts are placed along the trajectory (module docstring).
    """
    n = len(type_idx)
    weights = recipes[type_idx].copy()
    fates = np.zeros((n, len(LINEAGES)))
    for t, ctype in enumerate(CELL_TYPES):
        if ctype.lineage in LINEAGES:
            fates[type_idx == t, LINEAGES.index(ctype.lineage)] = 1.0
    u = rng.random(n)
    branch = rng.choice(len(LINEAGES), size=n, p=FATE_PRIOR)
    on_branch = rng.random(n) < 0.5

    def segment(rows: np.ndarray, start: np.ndarray, end: np.ndarray, pos: np.ndarray) -> None:
        weights[rows] = (1.0 - pos)[:, None] * recipes[start] + pos[:, None] * recipes[end]

    for rows, lo, hi in (
        (np.flatnonzero(type_idx == _HSC), 0.0, 0.7),
        (np.flatnonzero((type_idx == _MPP) & ~on_branch), 0.7, 1.0),
    ):  # trunk HSC -> MPP
        pos = lo + (hi - lo) * u[rows]
        segment(rows, np.full(len(rows), _HSC), np.full(len(rows), _MPP), pos)
        fates[rows] = FATE_PRIOR
    branch_rows = [(np.flatnonzero((type_idx == _MPP) & on_branch), branch, 0.0, 0.3)]
    for lin, end in _BRANCH_END.items():
        branch_rows.append((np.flatnonzero(type_idx == end), np.full(n, lin), 0.3, 1.0))
    for rows, lineage, lo, hi in branch_rows:  # branches MPP -> MEP / GMP / CLP
        pos = lo + (hi - lo) * u[rows]
        lin = lineage[rows]
        ends = np.array([_BRANCH_END[b] for b in lin], dtype=int)
        segment(rows, np.full(len(rows), _MPP), ends, pos)
        fates[rows] = (1.0 - pos)[:, None] * FATE_PRIOR + pos[:, None] * np.eye(len(LINEAGES))[lin]
    rows = np.flatnonzero(type_idx == _ERY)  # extension MEP -> erythroblast
    segment(rows, np.full(len(rows), _MEP), np.full(len(rows), _ERY), 0.2 + 0.8 * u[rows])
    return weights, fates


def _stack_csr(blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_genes: int) -> sp.csr_matrix:
    """Assemble a CSR matrix from per-chunk (data, column indices, row nnz) without densifying."""
    data = np.concatenate([b[0] for b in blocks])
    row_nnz = np.concatenate([b[2] for b in blocks])
    index_dtype = np.int32 if data.size < np.iinfo(np.int32).max else np.int64
    indices = np.concatenate([b[1] for b in blocks]).astype(index_dtype, copy=False)
    indptr = np.zeros(row_nnz.size + 1, dtype=index_dtype)
    np.cumsum(row_nnz, out=indptr[1:])
    return sp.csr_matrix((data, indices, indptr), shape=(row_nnz.size, n_genes))


def _resolve_types(exclude_types: Sequence[str], include_types: Sequence[str] | None) -> np.ndarray:
    for field, names in (("exclude_types", exclude_types), ("include_types", include_types)):
        if names is None:
            continue
        if isinstance(names, str):
            raise InputError(f"simulate.{field}: expected a list of cell type names, got the string {names!r}")
        unknown = [str(n) for n in names if n not in TYPE_NAMES]
        if unknown:
            raise InputError(f"simulate.{field}: unknown cell type(s) {unknown}; known: {list(TYPE_NAMES)}")
    keep = set(TYPE_NAMES if include_types is None else include_types) - set(exclude_types)
    if not keep:
        raise InputError("simulate.include_types/exclude_types: no cell type is left to simulate")
    return np.array([t for t, name in enumerate(TYPE_NAMES) if name in keep], dtype=int)


def _check_int(field: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"simulate.{field}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_studies(studies: Sequence[str]) -> list[str]:
    if isinstance(studies, str) or len(studies) == 0:
        raise InputError(f"simulate.studies: expected a non-empty list of study names, got {studies!r}")
    studies = [str(s) for s in studies]
    if len(set(studies)) != len(studies) or any(not s for s in studies):
        raise InputError(f"simulate.studies: study names must be non-empty and unique, got {studies}")
    return studies


def _check_effects(**effects) -> None:
    for field, value in effects.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not np.isfinite(value) or value < 0:
            raise InputError(f"simulate.{field}: expected a finite number >= 0, got {value!r}")


def _donors(studies: Sequence[str], donors_per_study: int, n_cells: int) -> list[tuple[str, str, int]]:
    """(study, donor, number of cells) of every donor; cells split evenly, the first donors take the remainder."""
    donors = [(study, f"{study}_donor{j + 1}") for study in studies for j in range(donors_per_study)]
    per_donor = np.full(len(donors), n_cells // len(donors))
    per_donor[: n_cells % len(donors)] += 1
    return [(study, donor, int(n_d)) for (study, donor), n_d in zip(donors, per_donor)]


@dataclass
class _DonorCells:
    type_idx: np.ndarray  # (cells,) index into CELL_TYPES
    weights: np.ndarray  # (cells, programs) jittered program weights
    fates: np.ndarray  # (cells, lineages)
    library: np.ndarray  # (cells,) library sizes
    offset: np.ndarray  # (genes,) base profile plus the study and donor shifts


def _draw_donor_cells(
    world: _World, study: str, donor: str, n_d: int, types: np.ndarray, *, seed: int, world_seed: int,
    study_effect: float, donor_effect: float,
) -> _DonorCells:
    """Types, positions and library sizes of one donor's cells (module docstring, "Cells")."""
    n_genes = world.base.size
    study_shift, study_lib = _batch_shift(world_seed, n_genes, "study:" + study, study_effect)
    donor_shift, donor_lib = _batch_shift(world_seed, n_genes, "donor:" + donor, donor_effect)
    log_library = np.log(LIBRARY_MEDIAN) + 0.5 * study_effect * study_lib + 0.5 * donor_effect * donor_lib
    offset = world.base + study_shift + donor_shift

    rng = np.random.default_rng([seed, _crc("cells"), _crc(donor)])
    type_idx = types[rng.choice(len(types), size=n_d, p=_donor_composition(world_seed, donor, types))]
    weights, fates = _place_cells(type_idx, world.recipes, rng)
    weights *= np.exp(rng.normal(0.0, JITTER_SD, weights.shape))
    library = np.exp(log_library + rng.normal(0.0, LIBRARY_SD, n_d)) * world.type_library[type_idx]
    return _DonorCells(type_idx, weights, fates, library, offset)


def _chunk_counts(world: _World, weights: np.ndarray, library: np.ndarray, offset: np.ndarray, gamma_rng, poisson_rng):
    """Negative-binomial counts of a chunk of cells as (data, column indices, row nnz)."""
    logmean = weights @ world.programs + offset
    logmean -= logmean.max(axis=1, keepdims=True)
    prop = np.exp(logmean)
    prop /= prop.sum(axis=1, keepdims=True)
    mean = prop * library[:, None]
    gamma = gamma_rng.gamma(world.shape, world.scale, size=mean.shape)
    counts = poisson_rng.poisson(mean * gamma)
    nonzero = counts > 0
    return counts[nonzero].astype(np.float32), np.nonzero(nonzero)[1].astype(np.int32), nonzero.sum(axis=1)


def _donor_counts(world: _World, cells: _DonorCells, donor: str, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One donor's counts, drawn in chunks of :data:`CHUNK_CELLS` cells (the result does not depend on the chunk size)."""
    gamma_rng = np.random.default_rng([seed, _crc("gamma"), _crc(donor)])
    poisson_rng = np.random.default_rng([seed, _crc("poisson"), _crc(donor)])
    n_d = len(cells.type_idx)
    for start in range(0, n_d, CHUNK_CELLS):
        rows = slice(start, min(start + CHUNK_CELLS, n_d))
        yield _chunk_counts(world, cells.weights[rows], cells.library[rows], cells.offset, gamma_rng, poisson_rng)


def _donor_obs(cells: _DonorCells, study: str, donor: str, seed: int) -> pd.DataFrame:
    n_d = len(cells.type_idx)
    return pd.DataFrame(
        {
            "cell_type": np.array(TYPE_NAMES, dtype=object)[cells.type_idx],
            "cell_ontology_id": np.array([t.ontology_id for t in CELL_TYPES], dtype=object)[cells.type_idx],
            "study": study,
            "donor": donor,
            **{f"fate_{lin}": cells.fates[:, i] for i, lin in enumerate(LINEAGES)},
        },
        index=[f"{donor}_s{seed}_c{i + 1:06d}" for i in range(n_d)],
    )


def _assembled_obs(obs_parts: list[pd.DataFrame], present: list[str]) -> pd.DataFrame:
    """All donors' obs: categorical type (every present type a category), study and donor columns."""
    obs = pd.concat(obs_parts)
    obs["cell_type"] = pd.Categorical(obs["cell_type"], categories=present)
    for col in ("study", "donor"):
        obs[col] = pd.Categorical(obs[col], categories=list(dict.fromkeys(obs[col])))
    return obs


def _gene_names(n_genes: int) -> pd.DataFrame:
    return pd.DataFrame(index=[f"gene{g + 1:05d}" for g in range(n_genes)])


def _assemble(blocks: list, obs_parts: list[pd.DataFrame], present: list[str], n_genes: int) -> ad.AnnData:
    """The AnnData of all donors' cells: CSR counts, categorical type, study and donor columns."""
    return ad.AnnData(X=_stack_csr(blocks, n_genes), obs=_assembled_obs(obs_parts, present), var=_gene_names(n_genes))


@dataclass
class _Plan:
    """A checked simulation request: its world, the types drawn, the donors and the ``uns["simulation"]`` record."""

    world: _World
    types: np.ndarray
    donors: list[tuple[str, str, int]]
    seed: int
    world_seed: int
    study_effect: float
    donor_effect: float
    record: dict

    @property
    def present(self) -> list[str]:
        return self.record["cell_types"]

    @property
    def n_genes(self) -> int:
        return self.record["n_genes"]


def _plan(
    n_cells, *, studies=("study1",), donors_per_study=2, seed=0, world_seed=0, n_genes=2000,
    exclude_types=(), include_types=None, study_effect=0.5, donor_effect=0.15,
) -> _Plan:
    """Check the parameters of :func:`simulate_dataset` and lay out its donors (no cells drawn yet)."""
    n_cells = _check_int("n_cells", n_cells, 1)
    donors_per_study = _check_int("donors_per_study", donors_per_study, 1)
    n_genes = _check_int("n_genes", n_genes, MIN_GENES)
    seed = _check_int("seed", seed, 0)
    world_seed = _check_int("world_seed", world_seed, 0)
    studies = _check_studies(studies)
    _check_effects(study_effect=study_effect, donor_effect=donor_effect)
    types = _resolve_types(exclude_types, include_types)
    present = [TYPE_NAMES[t] for t in types]
    record = {
        "n_cells": n_cells,
        "studies": list(studies),
        "donors_per_study": donors_per_study,
        "seed": seed,
        "world_seed": world_seed,
        "n_genes": n_genes,
        "exclude_types": [str(t) for t in exclude_types],
        "include_types": present if include_types is None else [str(t) for t in include_types],
        "study_effect": float(study_effect),
        "donor_effect": float(donor_effect),
        "cell_types": present,
        "lineages": list(LINEAGES),
    }
    donors = [d for d in _donors(studies, donors_per_study, n_cells) if d[2] > 0]
    return _Plan(_build_world(world_seed, n_genes), types, donors, seed, world_seed, float(study_effect), float(donor_effect), record)


def _donor_parts(plan: _Plan) -> Iterator[tuple[pd.DataFrame, Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]]]:
    """Per donor, in order: its obs and its count blocks (data, column indices, row nnz), drawn as they are read."""
    for study, donor, n_d in plan.donors:
        cells = _draw_donor_cells(
            plan.world, study, donor, n_d, plan.types, seed=plan.seed, world_seed=plan.world_seed,
            study_effect=plan.study_effect, donor_effect=plan.donor_effect,
        )
        yield _donor_obs(cells, study, donor, plan.seed), _donor_counts(plan.world, cells, donor, plan.seed)


def simulate_dataset(
    n_cells: int,
    *,
    studies: Sequence[str] = ("study1",),
    donors_per_study: int = 2,
    seed: int = 0,
    world_seed: int = 0,
    n_genes: int = 2000,
    exclude_types: Sequence[str] = (),
    include_types: Sequence[str] | None = None,
    study_effect: float = 0.5,
    donor_effect: float = 0.15,
) -> ad.AnnData:
    """Simulate negative-binomial counts of hematopoietic cells (model: module docstring).

    Parameters
    ----------
    n_cells
        Number of cells, split evenly over all donors.
    studies
        Study names; each has ``donors_per_study`` donors named ``<study>_donor<j>``.
    donors_per_study
        Donors per study (donor batch nested in study batch).
    seed
        Draws the cells (types, positions, library sizes, counts).
    world_seed
        Fixes cell types' programmes, dispersions and batch effects.
    n_genes
        Number of genes (at least ``MIN_GENES``).
    exclude_types, include_types
        Cell type names to drop / to keep (None: all); abundances renormalised.
    study_effect, donor_effect
        Standard deviations of the gene-wise log-fold batch shifts; the log
        capture efficiency (study) and log library factor (donor) have half of it.

    Returns
    -------
    AnnData with CSR float32 integer counts in ``X``; obs ``cell_type``
    (categorical), ``cell_ontology_id``, ``study``, ``donor``,
    ``fate_<lineage>``; ``uns["simulation"]`` the parameters.
    """
    plan = _plan(
        n_cells, studies=studies, donors_per_study=donors_per_study, seed=seed, world_seed=world_seed, n_genes=n_genes,
        exclude_types=exclude_types, include_types=include_types, study_effect=study_effect, donor_effect=donor_effect,
    )
    blocks, obs_parts = [], []
    for obs, donor_blocks in _donor_parts(plan):
        blocks.extend(donor_blocks)
        obs_parts.append(obs)
    adata = _assemble(blocks, obs_parts, plan.present, plan.n_genes)
    adata.uns["simulation"] = plan.record
    return adata


def write_simulated(path, *, name: str, values: str = "counts", **params) -> int:
    """Write :func:`simulate_dataset` (``params``) as a CSR h5ad at ``path``, chunk by chunk; return its cell count.

    For datasets above ``preprocess.backed_above_cells``: the matrix is never
    whole in memory (:func:`cellquery.backed.open_output`'s file, appended
    :data:`CHUNK_CELLS` cells at a time; per donor, its cells' programme
    weights and obs are held while its counts are drawn). The file holds what the in-memory path
    (:func:`cellquery.data.sources.load_dataset` + ``write_h5ad``) writes: the
    same counts and obs, obs names prefixed with ``name``, column ``dataset``,
    ``uns["values"]`` and ``uns["simulation"]`` (tests/test_stream_dataset.py).
    """
    import h5py
    from anndata import io as adio

    from cellquery.backed import open_output  # the chunked writer's file layout (lzf, appendable CSR)

    plan = _plan(**params)
    uns = {"simulation": plan.record, "values": values}
    open_output(path, _gene_names(plan.n_genes), uns, {}, counts=False, max_cells=plan.record["n_cells"])
    obs_parts = []
    with h5py.File(path, "a") as f:
        x_out = adio.sparse_dataset(f["X"])
        for obs, donor_blocks in _donor_parts(plan):
            obs_parts.append(obs)
            for block in donor_blocks:  # CHUNK_CELLS cells at a time
                x_out.append(_stack_csr([block], plan.n_genes))
        obs = _assembled_obs(obs_parts, plan.present)
        obs.index = [f"{name}:{o}" for o in obs.index]
        obs["dataset"] = name
        holder = ad.AnnData(obs=obs)
        holder.strings_to_categoricals()  # as AnnData.write_h5ad stores the in-memory path's string columns
        del f["obs"]
        adio.write_elem(f, "obs", holder.obs)
    return len(obs)
