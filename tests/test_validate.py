"""Input checks before any expensive job (cellquery.validate): whole-file, streamed, one line per problem."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellquery.validate as v
from cellquery.data.sources import select_cells
from cellquery.errors import InputError
from cellquery.preprocess import prepare_group
from cellquery.resample import resample_group
from cellquery.settings import GroupSettings

TYPES = {"A": "CL:0000236", "B": "CL:0000623", "C": "CL:0000576"}  # B cell, NK cell, monocyte
FATES = ("fate_a", "fate_b")


def dataset(n=30, genes=40, seed=0, labels=None):
    """Counts of ``n`` cells x ``genes`` genes with labels, batches, CL ids and fates that pass every check."""
    rng = np.random.default_rng(seed)
    labels = list(labels) if labels is not None else [("A", "B", "C")[i % 3] for i in range(n)]
    fate_a = rng.uniform(0, 1, n)
    obs = pd.DataFrame(
        {
            "cell_type": labels,
            "batch": ["b1" if i % 2 else "b2" for i in range(n)],
            "cl": [TYPES.get(str(t), "CL:0000236") for t in labels],
            "fate_a": fate_a,
            "fate_b": 1.0 - fate_a,
        },
        index=[f"c{i}" for i in range(n)],
    )
    x = rng.poisson(2.0, size=(n, genes)).astype(np.float32)
    return ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(genes)]))


SETTINGS = GroupSettings(label_key="cell_type", batch_keys=("batch",), ontology_key="cl", continuous_keys=FATES)
USAGE = [v.Usage("g", SETTINGS)]


def problems(adata, values="counts", spec=None, usages=USAGE):
    return v.dataset_problems(adata, where="data/d.h5ad (dataset d)", values=values, usages=usages, spec=spec, name="d")


def test_a_clean_dataset_has_no_problem():
    assert problems(dataset()) == []


@pytest.mark.parametrize("labels", [np.arange(30) % 3, pd.Categorical(["x", "y", "z"] * 10)], ids=["integers", "categorical"])
def test_integer_and_categorical_labels_are_accepted(labels):
    data = dataset(labels=labels)
    assert problems(data) == []


def test_duplicate_cell_and_gene_names():
    data = dataset()
    data.obs_names = ["c0", "c1", "c1"] + [f"c{i}" for i in range(3, 30)]
    data.var_names = ["g0", "g0"] + [f"g{j}" for j in range(2, 40)]
    assert problems(data) == [
        "data/d.h5ad (dataset d): obs_names: 1 cell name(s) occur more than once ('c1'); "
        "make them unique, e.g. with AnnData.obs_names_make_unique()",
        "data/d.h5ad (dataset d): var_names: 1 gene name(s) occur more than once ('g0'); "
        "make them unique, e.g. with AnnData.var_names_make_unique(), or sum the duplicated genes",
    ]


@pytest.mark.parametrize("layout", ["dense", "csr", "csc"])
@pytest.mark.parametrize("backed", [False, True], ids=["memory", "backed"])
def test_values_are_scanned_over_the_whole_matrix_in_chunks(tmp_path, monkeypatch, layout, backed):
    # chunks of 4 rows / 16 stored values: the bad values lie in later chunks, never in a first sample
    monkeypatch.setattr(v, "CHUNK_ROWS", 4)
    monkeypatch.setattr(v, "CHUNK_VALUES", 16)
    data = dataset(n=30, genes=10)
    x = data.X.toarray()
    x[25, 3] = np.nan
    x[27, 1] = np.inf
    x[26, 7] = -2.0
    x[29, 9] = 0.5
    data.X = {"dense": x, "csr": sp.csr_matrix(x), "csc": sp.csc_matrix(x)}[layout]
    if backed:
        data.write_h5ad(tmp_path / "d.h5ad")
        data = ad.read_h5ad(tmp_path / "d.h5ad", backed="r")
    scan = v.scan_values(data.X, integers=True)
    # brute force over the dense matrix (stored values only for sparse: the same, as the bad values are non-zero)
    finite = np.isfinite(x)
    assert scan.nonfinite == int((~finite).sum()) == 2
    assert scan.negative == int((x[finite] < 0).sum()) == 1 and scan.minimum == -2.0
    assert scan.nonintegral == 1 and scan.first_nonintegral == (29, 9, 0.5)
    assert scan.first_negative == (26, 7)
    # the first non-finite value in storage order: row-major for dense and CSR, column-major for CSC
    assert scan.first_nonfinite == ((27, 1) if layout == "csc" else (25, 3))
    found = problems(data)
    assert found[0] == (
        f"data/d.h5ad (dataset d): X has 2 non-finite value(s) (NaN or inf; first at cell "
        f"{'c27' if layout == 'csc' else 'c25'!r}, gene {'g1' if layout == 'csc' else 'g3'!r}); fix or remove those cells"
    )
    assert found[1].startswith("data/d.h5ad (dataset d): X has 1 negative value(s) (min -2, first at cell 'c26', gene 'g7')")
    assert found[2].startswith(
        "data/d.h5ad (dataset d): values: counts is declared, but X has 1 non-integer value(s) (e.g. 0.5 at cell 'c29', gene 'g9')"
    )
    assert "TPM/FPKM are neither counts nor log-normalised: store log1p(TPM)" in found[2]
    if backed:
        data.file.close()


def test_log_normalised_values_must_look_like_logarithms():
    data = dataset()
    data.X = sp.csr_matrix(np.log1p(data.X.toarray()))
    assert problems(data, values="log-normalised") == []
    data.X = sp.csr_matrix(data.X.toarray() * 100)  # max log1p(Poisson(2)) * 100 > 50: not a logarithm
    (problem,) = problems(data, values="log-normalised")
    assert "values: log-normalised is declared, but X reaches" in problem and "declare values: counts for raw counts" in problem


def test_obs_columns_are_present_and_complete():
    data = dataset()
    data.obs = data.obs.drop(columns="batch")
    data.obs.loc["c4", "cell_type"] = None
    found = problems(data)
    assert found[0] == (
        "data/d.h5ad (dataset d): obs column 'cell_type' (groups.g.label_key) has 1 missing value(s) (first: cell 'c4'); "
        "fill them in or remove those cells"
    )
    assert found[1].startswith(
        "data/d.h5ad (dataset d): obs column 'batch' (groups.g.batch_keys) is missing (columns: cell_type, cl, fate_a, fate_b); "
        "add it or change groups.g.batch_keys"
    )


def test_cell_ontology_ids_must_be_known_terms():
    data = dataset()
    data.obs["cl"] = data.obs["cl"].astype(object)
    data.obs.loc[["c1", "c2"], "cl"] = ["CL:9999999", "monocyte"]
    (problem,) = problems(data)
    assert problem.startswith("data/d.h5ad (dataset d): obs column 'cl' (groups.g.ontology_key) has 2 value(s) that are not terms of the bundled Cell Ontology")
    assert "('CL:9999999', 'monocyte'); use Cell Ontology ids such as 'CL:0000236', or remove groups.g.ontology_key" in problem


def test_fates_must_be_non_negative_and_sum_to_one():
    data = dataset()
    data.obs.loc["c3", "fate_b"] += 0.2
    (problem,) = problems(data)
    sums = data.obs[list(FATES)].sum(axis=1)
    assert problem == (
        "data/d.h5ad (dataset d): groups.g.continuous_keys (fate_a, fate_b): the fates of 1 cell(s) do not sum to 1 "
        f"(first: cell 'c3', sum {sums['c3']:.4g}; tolerance 0.001); give every cell a probability distribution over the fates"
    )
    data = dataset()
    data.obs.loc["c5", "fate_a"] = -0.1
    (problem,) = problems(data)
    assert problem.startswith("data/d.h5ad (dataset d): obs column 'fate_a' (groups.g.continuous_keys) has 1 negative or non-finite value(s) (first: cell 'c5', -0.1)")
    data = dataset()
    data.obs["fate_a"] = data.obs["fate_a"].astype(str)
    assert problems(data)[0] == (
        "data/d.h5ad (dataset d): obs column 'fate_a' (groups.g.continuous_keys) is not numeric (dtype object); "
        "store fate probabilities as numbers"
    )


def test_split_and_exclude_must_leave_cells():
    data = dataset()
    spec = {"exclude": {"obs_key": "cell_type", "values": ["A", "B", "C"]}}
    assert problems(data, spec=spec) == [
        "data/d.h5ad (dataset d): datasets.d.exclude removes every cell (obs column 'cell_type' holds only 'A', 'B', 'C'); "
        "exclude fewer values"
    ]
    spec = {"exclude": {"obs_key": "cell_type", "values": ["Z"]}}
    assert problems(data, spec=spec)[0].startswith("data/d.h5ad (dataset d): datasets.d.exclude.values: 'Z' not found in obs column 'cell_type'")
    # one cell per type: part 2 of a 0.9 split keeps round(0.1) = 0 cells of each
    spec = {"split": {"label_key": "cell_type", "fraction": 0.9, "part": 2, "seed": 0}}
    assert problems(dataset(n=3), spec=spec) == [
        "data/d.h5ad (dataset d): datasets.d.split: part 2 of fraction 0.9 is empty; change split.fraction"
    ]


def test_raise_problems_raises_the_first_and_logs_all(capsys):
    import sys

    with pytest.raises(InputError, match=r"^first \(and 1 more problem\(s\) listed in the log\)$"):
        v.raise_problems(["first", "second"], log=sys.stdout)
    assert capsys.readouterr().out == "InputError: first\nInputError: second\n"
    v.raise_problems([])


def test_load_checked_dataset_names_the_users_file(tmp_path):
    data = dataset()
    data.obs_names = ["c0"] * 30
    path = tmp_path / "mine.h5ad"
    data.write_h5ad(path)
    with pytest.raises(InputError, match=f"^{path} \\(dataset d\\): obs_names: 1 cell name\\(s\\) occur more than once"):
        v.load_checked_dataset("d", {"source": str(path), "values": "counts"}, USAGE)
    broken = tmp_path / "broken.h5ad"
    broken.write_bytes(b"no hdf5")
    with pytest.raises(InputError, match=f"^{broken} \\(dataset d\\): not a readable h5ad file \\(OSError: .*\\); write it with anndata's AnnData.write_h5ad$"):
        v.load_checked_dataset("d", {"source": str(broken), "values": "counts"}, USAGE)


# ----------------------------------------------------------------- groups
def loaded(name, adata, spec=None):
    adata = adata.copy()
    adata.obs_names = [f"{name}:{o}" for o in adata.obs_names]
    adata.uns["values"] = "counts"
    return v.LoadedDataset(name, {"source": f"data/{name}.h5ad", "values": "counts", **(spec or {})}, adata)


def test_group_sizes_are_those_the_preprocess_step_makes():
    rng = np.random.default_rng(3)
    ref = dataset(n=60, genes=60, seed=1)
    x = ref.X.toarray()
    x[:12, :50] = 0  # 12 cells with at most 10 detected genes: removed by QC (min_genes 15)
    ref.X = sp.csr_matrix(x)
    qry = dataset(n=45, genes=60, seed=2)
    qry.var_names = [f"g{j}" for j in rng.permutation(60)]
    split = {"split": {"label_key": "cell_type", "fraction": 0.7, "part": 1, "seed": 4},
             "exclude": {"obs_key": "cell_type", "values": ["C"]}}
    settings = GroupSettings(label_key="cell_type", reference_fraction=0.8, query_fraction=0.5)
    refs, qrys = [loaded("ref", ref, split)], [loaded("qry", qry)]
    found, table = v.group_problems(refs, qrys, group="g", settings=settings, seeds=[0, 1], k=3, min_genes=15)
    assert found == []
    for seed in (0, 1):
        cells = [select_cells(d.adata, d.spec, seed=seed) for d in refs], [select_cells(d.adata, d.spec, seed=seed) for d in qrys]
        r, q = prepare_group(*cells, reference_sources=["ref"], query_sources=["qry"], label_key="cell_type", min_genes=15)
        r, q = resample_group(r, q, label_key="cell_type", seed=seed, reference_fraction=0.8, query_fraction=0.5)
        rows = table[table["seed"] == seed].set_index("side")
        assert rows.loc["reference", "n_cells"] == r.n_obs and rows.loc["query", "n_cells"] == q.n_obs
        assert rows.loc["reference", "n_types"] == 2 and rows.loc["reference", "n_genes"] == 60


def test_group_problems_shared_genes_qc_and_k():
    ref, qry = dataset(n=30, genes=40, seed=1), dataset(n=30, genes=40, seed=2)
    qry.var_names = [f"ENSG{j}" for j in range(40)]
    (problem,), _ = v.group_problems([loaded("ref", ref)], [loaded("qry", qry)], group="g", settings=SETTINGS, seeds=[0], k=5)
    assert problem.startswith(
        "groups.g: reference (data/ref.h5ad (dataset ref)) and query (data/qry.h5ad (dataset qry)) share 0 genes, fewer than "
        "preprocess.min_shared_genes = 50 (reference 40 genes, e.g. 'g0', 'g1'; query 40, e.g. 'ENSG0', 'ENSG1')"
    )
    qry = dataset(n=30, genes=40, seed=2)
    found, _ = v.group_problems([loaded("ref", ref)], [loaded("qry", qry)], group="g", settings=SETTINGS, seeds=[0, 1],
                                k=31, min_genes=100, min_shared_genes=10)
    assert found[0].startswith("groups.g: the reference of seed 0 has no cells left after split, exclude and QC (min_genes 100 of 40 shared genes; ")
    assert "data/ref.h5ad (dataset ref): 30 cells, 30 after split/exclude, 0 after QC" in found[0]
    found, _ = v.group_problems([loaded("ref", ref)], [loaded("qry", qry)], group="g", settings=SETTINGS, seeds=[0, 1],
                                k=31, min_shared_genes=10)
    assert found == [
        f"config: k = 31 exceeds the 30 reference cells of groups.g in seed {s} (after split, exclude, QC and resample); "
        "lower k or give the group more reference cells"
        for s in (0, 1)
    ]


def test_resampled_size_matches_stratified_rows():
    from cellquery.resample import stratified_rows

    labels = np.array(["A"] * 50 + ["B"] * 30 + ["C"] * 3 + ["D"])
    for fraction in (0.1, 0.5, 0.8, 1.0):
        assert v.resampled_size(labels, fraction) == len(stratified_rows(labels, fraction, np.random.default_rng(0)))
