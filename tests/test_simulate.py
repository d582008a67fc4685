"""Tests of the simulated single-cell data (cellquery.data.simulate)."""

from __future__ import annotations

import glob
import json
import os
from collections import Counter

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from cellquery.data import simulate as sim
from cellquery.data.simulate import LINEAGES, cell_type_table, simulate_dataset
from cellquery.errors import InputError

FATES = [f"fate_{lin}" for lin in LINEAGES]
COMMON = ["CD14-positive monocyte", "naive thymus-derived CD4-positive, alpha-beta T cell",
          "CD4-positive, alpha-beta memory T cell", "naive thymus-derived CD8-positive, alpha-beta T cell",
          "CD8-positive, alpha-beta memory T cell", "natural killer cell", "naive B cell"]


def load_cell_ontology() -> dict:
    """Newest CL release shipped by cellxgene-ontology-guide: id -> term."""
    import cellxgene_ontology_guide
    import zstandard

    folder = os.path.join(os.path.dirname(cellxgene_ontology_guide.__file__), "data")
    path = sorted(glob.glob(os.path.join(folder, "CL-ontology-*.json.zst")))[-1]
    with open(path, "rb") as handle:
        return json.loads(zstandard.ZstdDecompressor().stream_reader(handle).read())


def lognorm(x) -> np.ndarray:
    x = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)
    return np.log1p(x / x.sum(axis=1, keepdims=True) * 1e4)


@pytest.fixture(scope="module")
def small() -> ad.AnnData:
    return simulate_dataset(3000, studies=["study1", "study2"], donors_per_study=2, seed=3)


def test_output_layout(small):
    x = small.X
    assert isinstance(x, sp.csr_matrix) and x.dtype == np.float32
    assert small.shape == (3000, 2000)
    assert x.data.min() >= 0 and np.array_equal(x.data, np.round(x.data))
    assert small.var_names[0] == "gene00001" and small.var_names[-1] == "gene02000"
    assert small.obs_names.is_unique
    assert small.obs["cell_type"].dtype.name == "category"
    assert set(small.obs["donor"]) == {"study1_donor1", "study1_donor2", "study2_donor1", "study2_donor2"}
    # the donor column is nested in study: each donor belongs to exactly one study
    pairs = small.obs[["study", "donor"]].astype(str).drop_duplicates()
    assert len(pairs) == 4 and all(d.startswith(s + "_") for s, d in zip(pairs["study"], pairs["donor"]))
    assert small.obs["donor"].value_counts().to_dict() == {d: 750 for d in set(small.obs["donor"])}
    table = cell_type_table().set_index("cell_type")
    ids = table.loc[small.obs["cell_type"].astype(str), "cell_ontology_id"].to_numpy()
    assert np.array_equal(ids, small.obs["cell_ontology_id"].to_numpy())
    assert small.uns["simulation"]["seed"] == 3 and small.uns["simulation"]["studies"] == ["study1", "study2"]


def test_library_sizes_vary_lognormally(small):
    totals = np.asarray(small.X.sum(axis=1)).ravel()
    mono = small.obs["cell_type"].to_numpy() == "CD14-positive monocyte"
    logs = np.log(totals[mono & (small.obs["donor"] == "study1_donor1").to_numpy()])
    # per-cell log size factor sd is LIBRARY_SD; sampling noise of the total is small
    assert 0.7 * sim.LIBRARY_SD < logs.std() < 1.4 * sim.LIBRARY_SD
    assert abs(np.median(totals) - sim.LIBRARY_MEDIAN) < 0.6 * sim.LIBRARY_MEDIAN


def test_deterministic_and_chunking_invariant(monkeypatch):
    kwargs = dict(studies=["a", "b"], seed=5, n_genes=600)
    one, two = simulate_dataset(400, **kwargs), simulate_dataset(400, **kwargs)
    assert (one.X != two.X).nnz == 0
    assert one.obs.equals(two.obs) and list(one.obs_names) == list(two.obs_names)
    monkeypatch.setattr(sim, "CHUNK_CELLS", 37)
    chunked = simulate_dataset(400, **kwargs)
    assert (one.X != chunked.X).nnz == 0


def type_means(adata: ad.AnnData, min_cells: int = 50) -> dict[str, np.ndarray]:
    x = lognorm(adata.X)
    labels = adata.obs["cell_type"].astype(str).to_numpy()
    return {t: x[labels == t].mean(axis=0) for t, n in Counter(labels).items() if n >= min_cells}


def test_seed_draws_cells_world_seed_draws_programs():
    kwargs = dict(n_genes=1000, include_types=COMMON)
    base = simulate_dataset(1500, seed=1, world_seed=0, **kwargs)
    other_cells = simulate_dataset(1500, seed=2, world_seed=0, **kwargs)
    other_world = simulate_dataset(1500, seed=1, world_seed=1, **kwargs)
    assert (base.X != other_cells.X).nnz > 0
    m1, m2, mw = type_means(base), type_means(other_cells), type_means(other_world)
    shared = sorted(set(m1) & set(m2) & set(mw))
    assert len(shared) == len(COMMON)
    for t in shared:
        assert np.corrcoef(m1[t], m2[t])[0, 1] > 0.95, t
        assert np.corrcoef(m1[t], mw[t])[0, 1] < 0.5, t
    # types are distinguishable: same-type profiles agree better than different types
    assert np.corrcoef(m1["CD14-positive monocyte"], m2["CD14-positive monocyte"])[0, 1] > np.corrcoef(
        m1["CD14-positive monocyte"], m2["natural killer cell"]
    )[0, 1]


def test_fates(small):
    fates = small.obs[FATES].to_numpy()
    assert (fates >= 0).all() and np.allclose(fates.sum(axis=1), 1.0, atol=1e-12)
    table = cell_type_table().set_index("cell_type")
    labels = small.obs["cell_type"].astype(str).to_numpy()
    lineage = table.loc[labels, "lineage"].to_numpy()
    mature = lineage != "progenitor"
    expected = np.array([[lin == name for name in LINEAGES] for lin in lineage[mature]], dtype=float)
    assert np.array_equal(fates[mature], expected)
    prior = sim.FATE_PRIOR
    hsc = labels == "hematopoietic stem cell"
    assert hsc.sum() > 0 and np.allclose(fates[hsc], prior)
    # MEP: (1 - u) prior + u e_erythroid with u in [0.3, 1]
    mep = fates[labels == "megakaryocyte-erythroid progenitor cell"]
    u = (mep[:, 0] - prior[0]) / (1 - prior[0])
    assert len(mep) > 10 and u.min() >= 0.3 - 1e-9 and u.max() <= 1 + 1e-9
    assert np.allclose(mep[:, 1:], (1 - u)[:, None] * prior[1:])
    assert u.std() > 0.1  # positions are spread along the branch


def test_trajectory_expression_interpolates():
    adata = simulate_dataset(1500, n_genes=1000, include_types=[
        "hematopoietic multipotent progenitor cell", "megakaryocyte-erythroid progenitor cell", "erythroblast"],
        seed=4)
    x = lognorm(adata.X)
    labels = adata.obs["cell_type"].astype(str).to_numpy()
    mpp, ery = labels == "hematopoietic multipotent progenitor cell", labels == "erythroblast"
    start, end = x[mpp].mean(axis=0), x[ery].mean(axis=0)
    axis = end - start
    score = (x - start) @ axis / (axis @ axis)  # 0 at the MPP mean, 1 at the erythroblast mean
    mep = labels == "megakaryocyte-erythroid progenitor cell"
    # MEP sit between MPP and erythroblasts, and move towards erythroblasts with commitment
    assert 0.2 < score[mep].mean() < 0.8
    rho = spearmanr(adata.obs["fate_erythroid"].to_numpy()[mep], score[mep]).statistic
    assert rho > 0.5


def test_rare_and_common_types(small):
    frac = small.obs["cell_type"].value_counts(normalize=True)
    rare = cell_type_table().query("rare")["cell_type"]
    assert len(rare) >= 2
    present_rare = [t for t in rare if 0 < frac.get(t, 0.0) < 0.01]
    assert len(present_rare) >= 2, frac.to_dict()
    assert frac.max() > 0.1
    assert 14 <= len(cell_type_table()) <= 18


def test_exclude_and_include():
    out = ["non-classical monocyte", "plasma cell"]
    adata = simulate_dataset(1000, n_genes=600, exclude_types=out, seed=1)
    assert not set(out) & set(adata.obs["cell_type"]) and not set(out) & set(adata.obs["cell_type"].cat.categories)
    keep = ["naive B cell", "memory B cell", "natural killer cell"]
    sub = simulate_dataset(300, n_genes=600, include_types=keep, exclude_types=["memory B cell"], seed=1)
    assert set(sub.obs["cell_type"]) == {"naive B cell", "natural killer cell"}
    with pytest.raises(InputError, match="unknown cell type.*'gamma-delta T cell'"):
        simulate_dataset(100, exclude_types=["gamma-delta T cell"])
    with pytest.raises(InputError, match="include_types.*'Tcell'"):
        simulate_dataset(100, include_types=["Tcell"])
    with pytest.raises(InputError, match="no cell type"):
        simulate_dataset(100, include_types=["naive B cell"], exclude_types=["naive B cell"])


def test_ontology_ids_are_real_and_hierarchical():
    cl = load_cell_ontology()
    table = cell_type_table()
    for name, cid in zip(table["cell_type"], table["cell_ontology_id"]):
        assert cid in cl and not cl[cid]["deprecated"], cid
        assert cl[cid]["label"] == name
    ids = dict(zip(table["cell_type"], table["cell_ontology_id"]))
    t_cells = [n for n in ids if "alpha-beta" in n]
    assert len(t_cells) == 4 and all("CL:0000084" in cl[ids[n]]["ancestors"] for n in t_cells)
    monos = ["CD14-positive monocyte", "non-classical monocyte"]
    assert all("CL:0000576" in cl[ids[n]]["ancestors"] for n in monos)
    assert all("CL:0000236" in cl[ids[n]]["ancestors"] for n in ["naive B cell", "memory B cell"])


def test_negative_binomial_overdispersion():
    """Counts of one type and donor: variance = Poisson mixture over library sizes + phi * mu^2."""
    n_genes = 2000
    adata = simulate_dataset(1200, studies=["s"], donors_per_study=1, n_genes=n_genes,
                             include_types=["CD14-positive monocyte"])
    world = sim._build_world(0, n_genes)
    # genes outside every programme: their mean varies between cells only through the library size
    free = np.flatnonzero(~world.programs.any(axis=0))
    counts = adata.X.toarray().astype(np.float64)
    top = free[np.argsort(counts[:, free].mean(axis=0))[-30:]]
    # programme-free totals track each cell's mean of a free gene: L_c exp(b_g) / sum_h exp(m_ch)
    totals = counts[:, free].sum(axis=1)
    mu = totals[:, None] * (counts[:, top].sum(axis=0) / totals.sum())  # Poisson means given library
    poisson_var = mu.mean(axis=0) + mu.var(axis=0)  # law of total variance for a Poisson mixture
    observed = counts[:, top].var(axis=0)
    assert (observed > counts[:, top].mean(axis=0)).all()
    assert np.median(observed / poisson_var) > 1.3
    # method-of-moments dispersion matches the model's phi_g: var = E[mu] + Var(mu) + phi E[mu^2]
    phi_hat = (observed - poisson_var) / (mu**2).mean(axis=0)
    assert 0.8 < np.median(phi_hat / world.scale[top]) < 1.2


def group_distance(adata: ad.AnnData, cell_type: str) -> tuple[float, float]:
    """Mean distance between donor mean profiles: across studies, within a study."""
    keep = adata.obs["cell_type"].to_numpy() == cell_type
    x = lognorm(adata.X[keep])
    donors = adata.obs["donor"].astype(str).to_numpy()[keep]
    study = {d: d.split("_donor")[0] for d in set(donors)}
    means = {d: x[donors == d].mean(axis=0) for d in study}
    across, within = [], []
    names = sorted(means)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            dist = np.linalg.norm(means[a] - means[b])
            (within if study[a] == study[b] else across).append(dist)
    return float(np.mean(across)), float(np.mean(within))


def test_two_level_batch_effects():
    kwargs = dict(studies=["study1", "study2"], donors_per_study=2, seed=2, n_genes=1000,
                  include_types=["CD14-positive monocyte"])
    across, within = group_distance(simulate_dataset(2000, **kwargs), "CD14-positive monocyte")
    assert across > 1.5 * within
    no_study = simulate_dataset(2000, study_effect=0.0, **kwargs)
    across0, within0 = group_distance(no_study, "CD14-positive monocyte")
    assert across0 < 1.25 * within0 and across0 < 0.6 * across
    neither = simulate_dataset(2000, study_effect=0.0, donor_effect=0.0, **kwargs)
    _, within00 = group_distance(neither, "CD14-positive monocyte")
    assert within00 < within0  # donor effect adds spread on top of sampling noise


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(n_cells=0), "n_cells"),
        (dict(n_cells=-5), "n_cells"),
        (dict(n_cells=2.5), "n_cells"),
        (dict(n_cells=True), "n_cells"),
        (dict(n_cells=10, studies=[]), "studies"),
        (dict(n_cells=10, studies="study1"), "studies"),
        (dict(n_cells=10, studies=["a", "a"]), "studies"),
        (dict(n_cells=10, donors_per_study=0), "donors_per_study"),
        (dict(n_cells=10, n_genes=100), "n_genes"),
        (dict(n_cells=10, study_effect=-1.0), "study_effect"),
        (dict(n_cells=10, donor_effect=float("nan")), "donor_effect"),
        (dict(n_cells=10, exclude_types="plasma cell"), "exclude_types"),
    ],
)
def test_bad_input(kwargs, field):
    with pytest.raises(InputError, match=field):
        simulate_dataset(**kwargs)


def test_h5ad_round_trip(tmp_path):
    adata = simulate_dataset(200, n_genes=600, include_types=["naive B cell", "plasma cell"], seed=1)
    path = tmp_path / "sim.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    assert (back.X != adata.X).nnz == 0
    assert list(back.uns["simulation"]["include_types"]) == ["naive B cell", "plasma cell"]
    assert back.obs["cell_type"].astype(str).equals(adata.obs["cell_type"].astype(str))


def test_difficulty_reference_query():
    """PCA + 15-NN majority vote across studies is good but not perfect (types overlap)."""
    negatives = ["non-classical monocyte", "plasma cell"]  # one common-ish, one rare
    ref = simulate_dataset(3000, studies=["study1", "study2"], seed=1, world_seed=0, exclude_types=negatives)
    query = simulate_dataset(1500, studies=["study3"], seed=2, world_seed=0)
    assert set(negatives) <= set(query.obs["cell_type"])
    for adata in (ref, query):
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(ref, n_top_genes=1000)
    hvg = ref.var["highly_variable"].to_numpy()
    r, q = ref.X[:, hvg].toarray(), query.X[:, hvg].toarray()
    center = r.mean(axis=0)
    pca = PCA(n_components=30, random_state=0).fit(r - center)
    zr, zq = pca.transform(r - center), pca.transform(q - center)
    labels = ref.obs["cell_type"].astype(str).to_numpy()
    _, nbr = NearestNeighbors(n_neighbors=15).fit(zr).kneighbors(zq)
    pred = np.array([Counter(labels[row]).most_common(1)[0][0] for row in nbr])
    truth = query.obs["cell_type"].astype(str).to_numpy()
    positive = ~np.isin(truth, negatives)
    accuracy = float(np.mean(pred[positive] == truth[positive]))
    per_type = {t: float(np.mean(pred[truth == t] == t)) for t in set(truth[positive]) if (truth == t).sum() >= 20}
    # coarse, distinct types map almost perfectly; close pairs (CD4/CD8, naive/memory) do not
    assert 0.6 < accuracy < 0.95, accuracy
    assert min(per_type.values()) < 0.9, per_type
    assert per_type["CD14-positive monocyte"] > 0.95 and per_type["natural killer cell"] > 0.9
    # study effect: reference neighbours come mostly from the same study (chance ~0.5)
    _, self_nbr = NearestNeighbors(n_neighbors=16).fit(zr).kneighbors(zr)
    study = ref.obs["study"].astype(str).to_numpy()
    purity = float(np.mean(study[self_nbr[:, 1:]] == study[:, None]))
    assert purity > 0.8, purity
