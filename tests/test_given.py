"""Embedding-only datasets (cellquery.given): config check, dataset and group checks, and one run through Snakemake."""

import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.neighbors import NearestNeighbors

from cellquery.config import check_config, method_skip_reason
from cellquery.errors import InputError
from cellquery.given import embedding_problems, given_embeddings, given_method, group_embedding_key
from cellquery.resample import resample_group
from cellquery.validate import dataset_problems

REPO = Path(__file__).resolve().parents[1]
CENTRES = {"A": 0.0, "B": 10.0, "C": 20.0, "D": 40.0}  # D: a query type the reference lacks


def make(n: int, types: str, *, seed: int, dims: int = 6, key: str = "X_scvi") -> ad.AnnData:
    """Cells of ``types`` in turn around well separated centres; obs and obsm[key] only (no genes)."""
    rng = np.random.default_rng(seed)
    labels = [types[i % len(types)] for i in range(n)]
    emb = np.stack([np.full(dims, CENTRES[t]) for t in labels]) + rng.normal(0, 1.0, (n, dims))
    obs = pd.DataFrame(
        {"cell_type": labels, "batch": [f"b{i % 2}" for i in range(n)]}, index=[f"cell{i}" for i in range(n)]
    )
    adata = ad.AnnData(obs=obs)
    adata.obsm[key] = emb.astype(np.float32)
    return adata


def config(**datasets) -> dict:
    return {
        "datasets": datasets
        or {"ref": {"source": "ref.h5ad", "embedding": {"obsm_key": "X_scvi"}},
            "qry": {"source": "qry.h5ad", "embedding": {"obsm_key": "X_scvi"}}},
        "groups": {"emb": {"reference": ["ref"], "query": ["qry"], "label_key": "cell_type", "batch_keys": ["batch"]}},
        "methods": {"pca": {"embedding": "pca", "params": {"n_comps": 5}}, "true_labels": {"predictor": "true_labels"}},
        "indexes": {"flat": {"backend": "faiss", "params": {"factory": "Flat"}}},
        "transfers": {"majority": {"voter": "majority", "min_hits": 2, "min_fraction": 0.5, "distance_quantile": 0.95}},
        "k": 5,
        "seeds": [0],
        "integration_metrics": False,
    }


def test_group_key_and_skips(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("ref.h5ad", "qry.h5ad"):
        (tmp_path / name).touch()
    cfg = config()
    check_config(cfg)
    assert group_embedding_key(cfg, "emb") == "X_scvi"
    assert given_method("X_scvi") == "given-X_scvi"
    assert method_skip_reason(cfg, "emb", "given-X_scvi") is None
    for method in ("pca", "true_labels"):
        assert "needs expression" in method_skip_reason(cfg, "emb", method)
    # a group mixing keys, or an embedding dataset with an expression one: one line naming the dataset and field
    cfg["datasets"]["qry"]["embedding"] = {"obsm_key": "X_pca"}
    with pytest.raises(InputError, match=r"^config: datasets\.qry\.embedding\.obsm_key: .*'X_pca'.*'X_scvi'"):
        check_config(cfg)
    cfg["datasets"]["qry"] = {"source": "qry.h5ad", "values": "counts"}
    with pytest.raises(InputError, match=r"^config: datasets\.qry\.embedding\.obsm_key: dataset qry of group emb has no embedding"):
        check_config(cfg)
    del cfg["datasets"]["qry"]["values"]
    with pytest.raises(InputError, match=r"^config: datasets\.qry\.values: required \(counts or log-normalised\), or give embedding"):
        check_config(cfg)
    cfg = config()
    cfg["methods"]["given-mine"] = {"embedding": "pca"}
    with pytest.raises(InputError, match="reserved"):
        check_config(cfg)


def test_embedding_problems_name_file_and_field(tmp_path):
    good = make(20, "AB", seed=0)
    assert embedding_problems(good, "X_scvi", where="f.h5ad (dataset ref)", name="ref") == []
    (missing,) = embedding_problems(good, "X_emb", where="f.h5ad (dataset ref)", name="ref")
    assert missing.startswith("f.h5ad (dataset ref): datasets.ref.embedding.obsm_key: obsm has no 'X_emb'")
    bad = good.copy()
    bad.obsm["X_scvi"][7, 3] = np.nan
    bad.write_h5ad(tmp_path / "bad.h5ad")
    backed = ad.read_h5ad(tmp_path / "bad.h5ad", backed="r")
    (problem,) = dataset_problems(backed, where="bad.h5ad (dataset ref)", values=None,
                                  spec={"source": "bad.h5ad", "embedding": {"obsm_key": "X_scvi"}}, name="ref")
    backed.file.close()
    assert "1 non-finite value(s)" in problem and "cell 'cell7', dimension 3" in problem


def test_given_embeddings_stack_and_resample_like_preprocess():
    ref = [make(30, "ABC", seed=1), make(12, "AB", seed=2)]
    ref[1].obs_names = [f"other{i}" for i in range(12)]
    qry = [make(20, "ABD", seed=3)]
    r, q = given_embeddings(ref, qry, key="X_scvi", label_key="cell_type", batch_keys=["batch"], seed=4,
                            reference_fraction=0.5, query_fraction=1.0)
    # the same cells as resample_group draws from the stacked sides, with their own rows of the embedding
    stacked = ad.concat(ref)
    expected, _ = resample_group(stacked, ad.concat(qry), label_key="cell_type", seed=4, reference_fraction=0.5)
    assert list(r.obs_names) == list(expected.obs_names)
    np.testing.assert_array_equal(r.obsm["X_emb"], stacked[r.obs_names].obsm["X_scvi"])
    np.testing.assert_array_equal(q.obsm["X_emb"], qry[0].obsm["X_scvi"])
    assert r.obs["cell_type"].dtype == "category" and r.uns["embedding"]["obsm_key"] == "X_scvi"


def test_embedding_only_group_runs_end_to_end(tmp_path):
    """An h5ad with obs and obsm only runs as given-X_scvi through snakemake; pca and a peer are skipped with the reason."""
    ref, qry = make(60, "ABC", seed=1), make(30, "ABD", seed=2)
    ref.write_h5ad(tmp_path / "ref.h5ad")
    qry.write_h5ad(tmp_path / "qry.h5ad")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config()))
    cmd = [sys.executable, "-m", "snakemake", "results/summary.tsv", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
           "-c1", "--configfile", str(tmp_path / "config.yaml")]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "results/emb/seed0").exists()  # no preprocess, no hvg
    summary = pd.read_csv(tmp_path / "results/summary.tsv", sep="\t")
    given = summary[summary["method"] == "given-X_scvi"].set_index("metric")["value"]
    skipped = summary[summary["metric"].str.startswith("skipped")]
    assert set(skipped["method"]) == {"pca", "true_labels"}
    assert skipped["metric"].str.contains("needs expression but the group gives an embedding only").all()

    # brute force: the 5 nearest reference cells (sklearn) of every query cell of a reference type
    predictions = pd.read_csv(tmp_path / "results/emb/embeddings/given-X_scvi/seed0/flat/majority/predictions.tsv",
                              sep="\t")
    _, hits = NearestNeighbors(n_neighbors=5, algorithm="brute").fit(ref.obsm["X_scvi"]).kneighbors(qry.obsm["X_scvi"])
    majority = [pd.Series(ref.obs["cell_type"].to_numpy()[row]).mode()[0] for row in hits]
    known = predictions["true_label"].isin(["A", "B"]).to_numpy()
    accepted = known & ~predictions["prediction"].isin(["rejected", "ambiguous"]).to_numpy()
    assert accepted.sum() > 0
    assert (predictions["prediction"].to_numpy()[accepted] == np.array(majority)[accepted]).all()
    # the separated clusters: every known cell right, every D cell rejected
    assert (predictions["prediction"][known] == predictions["true_label"][known]).mean() >= 0.9
    assert (predictions["prediction"][~known] == "rejected").all()
    assert given["mba_positive"] >= 0.9 and given["mba_negative"] == 1.0
