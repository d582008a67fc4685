"""Chunked (backed) preprocessing, HVG and PCA against the in-memory scanpy path on small simulated data."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.sparse as sp
import scanpy as sc

from cellquery.backed import (
    batch_statistics,
    count_cells,
    is_chunked,
    pca_backed,
    prepare_group_backed,
    read_backed,
    select_hvg_backed,
)
from cellquery.data.simulate import simulate_dataset
from cellquery.embed.pca import embed as pca_embed
from cellquery.errors import InputError
from cellquery.hvg import select_hvg
from cellquery.io import read_h5ad, write_h5ad
from cellquery.preprocess import prepare_group
from cellquery.resample import resample_group

CHUNK = 257  # tiny, uneven chunks: every dataset spans several


def dataset(path, n, seed, study, name):
    adata = simulate_dataset(n, studies=(study,), donors_per_study=2, seed=seed, n_genes=500)
    adata.obs_names = [f"{name}:{o}" for o in adata.obs_names]
    adata.obs["dataset"] = name
    adata.uns = {"values": "counts"}
    if name == "r2":  # a different gene order and one gene fewer: the inner join and the shared genes reorder columns
        adata = adata[:, list(adata.var_names[::-1][1:])].copy()
    write_h5ad(adata, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("backed")
    return {
        "r1": dataset(d / "r1.h5ad", 1500, 0, "study1", "r1"),
        "r2": dataset(d / "r2.h5ad", 1500, 1, "study2", "r2"),
        "q": dataset(d / "q.h5ad", 800, 2, "study3", "q"),
        "dir": d,
    }


def masks(adatas):
    """Seeded cell selections (as split/exclude would give)."""
    rng = np.random.default_rng(5)
    return [rng.random(a.n_obs) < 0.9 for a in adatas]


def min_genes_dropping_some(files):
    detected = (read_h5ad(files["r1"]).X > 0).sum(axis=1)
    return int(np.percentile(np.asarray(detected).ravel(), 10))


def both_paths(files, **settings):
    names = {"reference": ["r1", "r2"], "query": ["q"]}
    memory = {side: [read_h5ad(files[n]) for n in ns] for side, ns in names.items()}
    backed = {side: [read_backed(files[n], obsm=True) for n in ns] for side, ns in names.items()}
    sel = {side: masks(memory[side]) for side in names}
    common = dict(reference_sources=names["reference"], query_sources=names["query"], label_key="cell_type",
                  batch_keys=["donor"], ontology_key="cell_ontology_id", **settings)
    ref, qry = prepare_group([a[m].copy() for a, m in zip(memory["reference"], sel["reference"])],
                             [a[m].copy() for a, m in zip(memory["query"], sel["query"])], **common)
    ref, qry = resample_group(ref, qry, label_key="cell_type", seed=3, reference_fraction=0.8, query_fraction=1.0)
    out_ref, out_qry = files["dir"] / "out_ref.h5ad", files["dir"] / "out_qry.h5ad"
    n_ref, n_qry = prepare_group_backed(
        list(zip(backed["reference"], sel["reference"])), list(zip(backed["query"], sel["query"])),
        out_reference=out_ref, out_query=out_qry, seed=3, reference_fraction=0.8, chunk_cells=CHUNK, **common,
    )
    assert (n_ref, n_qry) == (ref.n_obs, qry.n_obs)
    return (ref, qry), (read_h5ad(out_ref), read_h5ad(out_qry)), (out_ref, out_qry)


@pytest.fixture(scope="module")
def prepared(files):
    return both_paths(files, min_genes=min_genes_dropping_some(files), target_sum=1e4)


def test_chunked_preprocess_equals_in_memory(files, prepared):
    memory, chunked, _ = prepared
    for mem, chk in zip(memory, chunked):
        assert list(chk.obs_names) == list(mem.obs_names)  # same QC mask, same resample
        pd.testing.assert_frame_equal(chk.obs, mem.obs, check_dtype=False)
        assert list(chk.var_names) == list(mem.var_names) and chk.n_vars == 499
        np.testing.assert_array_equal(chk.layers["counts"].toarray(), mem.layers["counts"].toarray())
        np.testing.assert_allclose(chk.X.toarray(), mem.X.toarray(), rtol=1e-6, atol=1e-6)
        assert chk.uns["values"] == "counts" and is_chunked(chk) and not is_chunked(mem)
    # the QC threshold did drop cells of the reference
    assert (memory[0].obs["n_genes"] >= min_genes_dropping_some(files)).all()
    assert count_cells(files["r1"]) == 1500


def test_chunked_preprocess_past_32_bit_indices_writes_64_bit_ones(files, prepared, tmp_path, monkeypatch):
    """An atlas whose cells x genes could pass 2^31 values: anndata cannot append past a 32-bit indptr,
    so the chunked writer starts its matrices with 64-bit indices (same content)."""
    import h5py

    import cellquery.backed as backed

    monkeypatch.setattr(backed, "INT32_INDEX_LIMIT", 1000)  # as if cells x genes could pass 2^31
    _, chunked, paths = both_paths({**files, "dir": tmp_path}, min_genes=min_genes_dropping_some(files), target_sum=1e4)
    for path in paths:
        with h5py.File(path) as f:
            for key in ("X", "layers/counts"):
                assert f[f"{key}/indptr"].dtype == np.int64 and f[f"{key}/indptr"][-1] == f[f"{key}/data"].shape[0]
    for expected, got in zip(prepared[1], chunked):
        assert (expected.X != got.X).nnz == 0 and (expected.layers["counts"] != got.layers["counts"]).nnz == 0
        assert list(expected.obs_names) == list(got.obs_names)


def test_chunked_preprocess_drops_the_same_cells_as_filter_cells(files, prepared):
    memory, _, _ = prepared
    raw = read_h5ad(files["r1"])
    kept = set(memory[0].obs_names[memory[0].obs["dataset"] == "r1"])
    detected = pd.Series(np.asarray((raw.X > 0).sum(axis=1)).ravel(), index=raw.obs_names)
    low = set(detected.index[detected < min_genes_dropping_some(files)])
    assert low and not (kept & low)


def test_chunked_hvg_equals_scanpy(prepared):
    memory, _, (out_ref, _) = prepared
    backed = read_backed(out_ref)
    expected = select_hvg(memory[0], batch_key="donor", n_top_genes=100, min_batch_fraction=0.5)
    got = select_hvg_backed(backed, batch_key="donor", n_top_genes=100, min_batch_fraction=0.5, chunk_cells=CHUNK)
    assert list(got["gene"]) == list(expected["gene"]) and list(got["n_batches"]) == list(expected["n_batches"])
    np.testing.assert_allclose(got["dispersion"], expected["dispersion"], rtol=1e-6)
    # per-batch gene statistics against scanpy run on each batch alone
    for name, table in batch_statistics(backed, batch_key="donor", n_top_genes=100, chunk_cells=CHUNK):
        part = memory[0][memory[0].obs["donor"].astype(str) == name].copy()
        stats = sc.pp.highly_variable_genes(part, flavor="seurat", n_top_genes=100, inplace=False)
        for column in ("means", "dispersions", "dispersions_norm"):
            np.testing.assert_allclose(table[column], stats[column], rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(table["highly_variable"], stats["highly_variable"])


def subspace_angle(a, b):
    return np.degrees(scipy.linalg.subspace_angles(a, b).max())


def test_chunked_pca_equals_in_memory_up_to_sign(prepared):
    memory, _, (out_ref, out_qry) = prepared
    genes = list(select_hvg(memory[0], batch_key="donor", n_top_genes=100)["gene"])
    ref_b, qry_b = read_backed(out_ref), read_backed(out_qry)
    ref_m, qry_m = pca_embed(memory[0], memory[1], genes, n_comps=10)
    ref_c, qry_c = pca_backed(ref_b, qry_b, genes, n_comps=10, fit_cells=None, chunk_cells=CHUNK)
    signs = np.sign((ref_m * ref_c).sum(axis=0))
    assert (signs != 0).all()
    np.testing.assert_allclose(ref_c * signs, ref_m, atol=2e-3 * np.abs(ref_m).max())
    np.testing.assert_allclose(qry_c * signs, qry_m, atol=2e-3 * np.abs(qry_m).max())


def test_chunked_pca_subsample_is_seeded(prepared):
    memory, _, (out_ref, out_qry) = prepared
    genes = list(select_hvg(memory[0], batch_key="donor", n_top_genes=100)["gene"])
    ref_b, qry_b = read_backed(out_ref), read_backed(out_qry)
    first = pca_backed(ref_b, qry_b, genes, n_comps=5, seed=4, fit_cells=1000, chunk_cells=CHUNK)
    again = pca_backed(ref_b, qry_b, genes, n_comps=5, seed=4, fit_cells=1000, chunk_cells=CHUNK)
    other_chunks = pca_backed(ref_b, qry_b, genes, n_comps=5, seed=4, fit_cells=1000, chunk_cells=500)
    other = pca_backed(ref_b, qry_b, genes, n_comps=5, seed=5, fit_cells=1000, chunk_cells=CHUNK)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    # another chunk size only changes the summation order of the scaling statistics
    np.testing.assert_allclose(other_chunks[0], first[0], atol=1e-3)
    assert not np.array_equal(first[0], other[0])
    # a 1000-cell fit spans nearly the subspace of the fit on every cell
    full, _ = pca_embed(memory[0], memory[1], genes, n_comps=5)
    assert subspace_angle(first[0][:, :3], full[:, :3]) < 10


def run_group_scripts(run_workflow_script, files, out, backed_above_cells):
    """preprocess.py -> hvg.py -> embed.py (pca) on one group, as Snakemake runs them."""
    from types import SimpleNamespace as NS

    group = {"reference": ["r1", "r2"], "query": ["q"], "label_key": "cell_type", "batch_keys": ["donor"],
             "ontology_key": "cell_ontology_id", "resample": {"reference_fraction": 0.8}}
    specs = {"r1": {"source": "simulated", "exclude": {"obs_key": "cell_type", "values": ["plasma cell"]}},
             "r2": {"source": "simulated", "split": {"label_key": "cell_type", "fraction": 0.7, "part": 1, "seed": 1}},
             "q": {"source": "simulated"}}
    pre = NS(reference=out / "reference.h5ad", query=out / "query.h5ad")
    settings = {"min_genes": min_genes_dropping_some(files), "target_sum": 10000, "backed_above_cells": backed_above_cells,
                "chunk_cells": CHUNK}
    run_workflow_script("preprocess.py", NS(
        input=NS(reference=[files["r1"], files["r2"]], query=[files["q"]]), output=pre,
        params=NS(group=group, datasets=specs, settings=settings), wildcards=NS(seed="1"), log=[out / "pre.log"]))
    run_workflow_script("hvg.py", NS(input=NS(reference=pre.reference), output=[out / "hvg.tsv"],
                                     params=NS(group=group, settings={"n_top_genes": 100}), log=[out / "hvg.log"]))
    emb = NS(reference=out / "reference_embedding.h5ad", query=out / "query_embedding.h5ad")
    run_workflow_script("embed.py", NS(
        input=NS(reference=pre.reference, query=pre.query, hvg=out / "hvg.tsv"), output=emb, resources={}, rule="embed",
        params=NS(method={"embedding": "pca", "params": {"n_comps": 8}}, random_seed=0), log=[out / "embed.log"]))
    return [read_h5ad(p) for p in (pre.reference, pre.query)], pd.read_csv(out / "hvg.tsv", sep="\t"), \
        [read_h5ad(p) for p in (emb.reference, emb.query)]


def test_workflow_scripts_switch_to_the_chunked_path_above_the_bound(files, tmp_path, run_workflow_script):
    (tmp_path / "memory").mkdir()
    (tmp_path / "chunked").mkdir()
    memory = run_group_scripts(run_workflow_script, files, tmp_path / "memory", backed_above_cells=10**9)
    chunked = run_group_scripts(run_workflow_script, files, tmp_path / "chunked", backed_above_cells=3799)  # 3800 cells
    (pre_m, hvg_m, emb_m), (pre_c, hvg_c, emb_c) = memory, chunked
    for mem, chk in zip(pre_m, pre_c):
        assert not is_chunked(mem) and is_chunked(chk)
        assert list(chk.obs_names) == list(mem.obs_names)
        np.testing.assert_allclose(chk.X.toarray(), mem.X.toarray(), rtol=1e-6, atol=1e-6)
    # the split, exclude and resample of the seed took effect
    assert "plasma cell" not in set(pre_c[0].obs["cell_type"][pre_c[0].obs["dataset"] == "r1"])
    assert pre_c[0].n_obs < 0.8 * 0.7 * 1500 + 0.8 * 1500
    pd.testing.assert_frame_equal(hvg_c[["gene", "n_batches"]], hvg_m[["gene", "n_batches"]])
    for mem, chk in zip(emb_m, emb_c):
        assert list(chk.obs_names) == list(mem.obs_names) and chk.uns["embedding"]["method"] == "pca"
        signs = np.sign((emb_m[0].obsm["X_emb"] * emb_c[0].obsm["X_emb"]).sum(axis=0))
        np.testing.assert_allclose(chk.obsm["X_emb"] * signs, mem.obsm["X_emb"], atol=2e-3 * np.abs(mem.obsm["X_emb"]).max())


def test_read_backed_reads_rows_and_refuses_csc(files, prepared, tmp_path):
    _, chunked, (out_ref, _) = prepared
    backed = read_backed(out_ref)
    assert not hasattr(backed, "layers") and backed.n_obs == chunked[0].n_obs and list(backed.var_names) == list(chunked[0].var_names)
    np.testing.assert_array_equal(backed.X[10:20].toarray(), chunked[0].X[10:20].toarray())
    dense = ad.AnnData(X=chunked[0].X[:50].toarray(), obs=chunked[0].obs.iloc[:50])
    write_h5ad(dense, tmp_path / "dense.h5ad")
    np.testing.assert_array_equal(read_backed(tmp_path / "dense.h5ad").X[5:9], dense.X[5:9])
    csc = ad.AnnData(X=sp.csc_matrix(dense.X), obs=dense.obs)
    write_h5ad(csc, tmp_path / "csc.h5ad")
    with pytest.raises(InputError, match="csc.h5ad: X: the chunked path reads rows of a CSR or dense matrix, found csc_matrix"):
        read_backed(tmp_path / "csc.h5ad")


def test_benchmark_generates_with_the_workflows_streamed_simulation_and_agrees_with_the_in_memory_path(tmp_path):
    from cellquery.bench.backed import run

    result = run(3000, 500, tmp_path / "bench", n_query=300, chunk_cells=700, fit_cells=3000,
                 n_top_genes=100, n_comps=8, in_memory_baseline=True, keep=True, scvi_epochs=1)
    # the generated reference is the workflow's load of the same simulated dataset (cellquery.data.simulate.write_simulated)
    stored = read_h5ad(tmp_path / "bench" / "reference_counts.h5ad")
    expected = simulate_dataset(3000, studies=("study1", "study2"), donors_per_study=2, seed=0, n_genes=500)
    assert (stored.X != expected.X).nnz == 0 and result["nnz"] == expected.X.nnz
    assert list(stored.obs_names[:2]) == [f"atlas:{o}" for o in expected.obs_names[:2]]
    assert stored.uns["values"] == "counts" and set(stored.obs["dataset"]) == {"atlas"}
    assert result["in_memory"]["same_hvg"] and result["in_memory"]["max_abs_embedding_diff"] < 1e-2
    assert result["embedding_shape"] == [result["n_reference_after_qc"], 8]
    assert set(result["stages"]) == {"generate", "preprocess", "hvg", "pca", "scvi", "memory_preprocess", "memory_hvg", "memory_pca"}
    assert result["scvi_embedding_shape"] == [result["n_reference_after_qc"], 10]
    assert all(s["peak_rss_mb"] > 0 and s["wall_s"] >= 0 for s in result["stages"].values())


def test_scvi_fit_subsample_keeps_every_batch():
    from cellquery.backed import fit_rows
    from cellquery.embed.scvi import fit_subsample

    obs = pd.DataFrame({"donor": ["a"] * 1000 + ["b"] * 3 + ["c"] * 400})
    drawn = fit_rows(len(obs), 20, 0)
    assert not ((drawn >= 1000) & (drawn < 1003)).any()  # the draw missed b
    rows = fit_subsample(obs, 20, 0, "donor")
    # the draw, plus b's 3 cells (fewer than 20 // 3 = 6); a and c were drawn
    assert set(drawn) <= set(rows) and set(rows) - set(drawn) == {1000, 1001, 1002}
    assert list(rows) == sorted(rows)
    np.testing.assert_array_equal(fit_subsample(obs, 20, 0, None), drawn)
    np.testing.assert_array_equal(fit_subsample(obs, None, 0, "donor"), np.arange(len(obs)))
    with pytest.raises(InputError, match="obs column 'batch'"):
        fit_subsample(obs, 20, 0, "batch")


SCVI_SMALL = dict(batch_key="donor", n_latent=4, n_hidden=16, max_epochs=3, query_epochs=2, batch_size=128)


def test_chunked_scvi_equals_in_memory_scvi_on_the_same_subsample(prepared):
    """Trained on the same seeded rows of the chunked file, the embeddings are the in-memory path's."""
    from cellquery.embed.scvi import embed as scvi_embed
    from cellquery.embed.scvi import embed_backed as scvi_embed_backed

    memory, chunked, (out_ref, out_qry) = prepared
    genes = list(select_hvg(memory[0], batch_key="donor", n_top_genes=100)["gene"])
    fit_cells = 500  # fewer than both sides' cells: the reference model and the surgery train on subsamples
    assert chunked[1].n_obs > fit_cells and chunked[0].n_obs > 3 * fit_cells
    ref_m, qry_m = scvi_embed(chunked[0], chunked[1], genes, seed=2, fit_cells=fit_cells, **SCVI_SMALL)
    ref_c, qry_c = scvi_embed_backed(out_ref, out_qry, genes, seed=2, fit_cells=fit_cells, chunk_cells=CHUNK, **SCVI_SMALL)
    assert ref_c.shape == (chunked[0].n_obs, 4) and qry_c.shape == (chunked[1].n_obs, 4)
    np.testing.assert_allclose(ref_c, ref_m, atol=1e-5)
    np.testing.assert_allclose(qry_c, qry_m, atol=1e-5)
    # another subsample is another model
    ref_other, _ = scvi_embed_backed(out_ref, out_qry, genes, seed=3, fit_cells=fit_cells, chunk_cells=CHUNK, **SCVI_SMALL)
    assert np.abs(ref_other - ref_c).max() > 1e-2


def test_embed_script_takes_the_chunked_scvi_path_and_reads_other_methods_whole(prepared, tmp_path, run_workflow_script):
    from types import SimpleNamespace as NS

    from cellquery.embed import embed_group_backed
    from cellquery.embed.scvi import embed_backed as scvi_embed_backed

    memory, chunked, (out_ref, out_qry) = prepared
    genes = list(select_hvg(memory[0], batch_key="donor", n_top_genes=100)["gene"])
    pd.DataFrame({"gene": genes}).to_csv(tmp_path / "hvg.tsv", sep="\t", index=False)
    params = {**SCVI_SMALL, "fit_cells": 500}
    out = NS(reference=tmp_path / "ref_emb.h5ad", query=tmp_path / "qry_emb.h5ad")
    run_workflow_script("embed.py", NS(
        input=NS(reference=out_ref, query=out_qry, hvg=tmp_path / "hvg.tsv"), output=out, resources={}, rule="embed",
        params=NS(method={"embedding": "scvi", "params": params}, random_seed=2), log=[tmp_path / "embed.log"]))
    ref_c, qry_c = scvi_embed_backed(out_ref, out_qry, genes, seed=2, chunk_cells=CHUNK, **params)
    written = read_h5ad(out.reference), read_h5ad(out.query)
    # the file's chunk size (CHUNK) is the one used; rows encoded alike in any chunks
    np.testing.assert_allclose(written[0].obsm["X_emb"], ref_c, atol=1e-5)
    np.testing.assert_allclose(written[1].obsm["X_emb"], qry_c, atol=1e-5)
    assert list(written[0].obs_names) == list(chunked[0].obs_names) and written[0].uns["embedding"]["method"] == "scvi"
    assert "no chunked path" not in (tmp_path / "embed.log").read_text()
    # a method without a chunked path (spatial groups' neighbourhood average) is read whole by the script
    assert embed_group_backed(read_backed(out_ref), read_backed(out_qry), genes, embedding="spatial_avg", params={}, seed=0) is None


def test_chunked_pearson_pca_and_pca_subsample_equal_in_memory(prepared):
    """Fitted on the same cells, the chunked paths give the in-memory embeddings; with fewer fit cells, another fit."""
    from cellquery.embed import pca as pca_module
    from cellquery.embed import pca_subsample, pearson_pca

    memory, chunked, (out_ref, out_qry) = prepared
    genes = list(select_hvg(memory[0], batch_key="donor", n_top_genes=100)["gene"])
    n_ref = chunked[0].n_obs
    for module, params in ((pearson_pca, {"n_comps": 8}), (pca_subsample, {"n_comps": 8, "cell_fraction": 0.5})):
        ref_m, qry_m = module.embed(chunked[0], chunked[1], genes, seed=4, **params)
        ref_c, qry_c = module.embed_backed(out_ref, out_qry, genes, seed=4, fit_cells=n_ref, chunk_cells=CHUNK, **params)
        assert ref_c.shape == ref_m.shape == (n_ref, 8) and qry_c.shape == (chunked[1].n_obs, 8)
        # the same fit up to summation order (p_g, scaling) and the components' signs
        signs = np.sign((ref_m * ref_c).sum(axis=0))
        tol = 2e-3 * np.abs(ref_m).max()
        np.testing.assert_allclose(ref_c * signs, ref_m, atol=tol)
        np.testing.assert_allclose(qry_c * signs, qry_m, atol=tol)
        # fit_cells below the reference (and below pca_subsample's half): fitted on those cells, in memory too
        ref_s, qry_s = module.embed_backed(out_ref, out_qry, genes, seed=4, fit_cells=300, chunk_cells=CHUNK, **params)
        ref_sm, qry_sm = module.embed(chunked[0], chunked[1], genes, seed=4, fit_cells=300, **params)
        signs = np.sign((ref_sm * ref_s).sum(axis=0))
        np.testing.assert_allclose(ref_s * signs, ref_sm, atol=tol)
        np.testing.assert_allclose(qry_s * signs, qry_sm, atol=tol)
        assert subspace_angle(ref_s, ref_c) > 0.1  # another fit
    # method pca in memory with fit_cells: fitted on fit_rows' cells
    from cellquery.backed import fit_rows

    part = chunked[0][fit_rows(n_ref, 300, 4)]
    ref_f, _ = pca_module.embed(chunked[0], chunked[1], genes, seed=4, n_comps=8, fit_cells=300)
    ref_p, _ = pca_module.embed(part, chunked[1], genes, n_comps=8)
    np.testing.assert_allclose(ref_f[fit_rows(n_ref, 300, 4)], ref_p, atol=1e-4)


def test_chunked_readers_name_the_file_and_field_of_bad_input(prepared):
    from cellquery.backed import gene_columns, layer_chunks
    from cellquery.embed.scvi import embed_backed as scvi_embed_backed

    _, _, (out_ref, out_qry) = prepared
    with pytest.raises(InputError, match=r"out_ref.h5ad: var_names: reference: highly variable genes missing, e.g. \['nope'\]"):
        gene_columns(out_ref, ["nope"], "reference")
    with pytest.raises(InputError, match=r"out_ref.h5ad: layers\['spliced'\] is missing"):
        next(layer_chunks(out_ref, "spliced"))
    with pytest.raises(InputError, match=r"out_ref.h5ad: obs column 'batch' \(scVI batch_key\) is missing"):
        scvi_embed_backed(out_ref, out_qry, ["x"], batch_key="batch")
