"""What the mapping matrix carries, end to end on the shared toy run: every number recomputed from the run's own files."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

from cellquery.transfer.expression import ExpressionSettings, held_out_genes


@pytest.fixture(scope="module")
def toy(toy_run):
    return toy_run.workdir, toy_run.config


def summary_values(workdir: Path) -> pd.Series:
    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t")
    return summary.set_index(["group", "method", "index", "transfer", "seed", "metric"])["value"]


def check_rare_types(workdir: Path, config: dict) -> None:
    """results/rare_types.tsv: a row per rare type and voter run, accuracy recounted from its predictions."""
    table = pd.read_csv(workdir / "results/rare_types.tsv", sep="\t")
    voters = {config["transfers"][t]["voter"] for t in table["transfer"]}
    assert "kernel" in voters and "majority" in voters
    for (group, method, index, transfer, seed), rows in table.groupby(["group", "method", "index", "transfer", "seed"]):
        run = workdir / f"results/{group}/embeddings/{method}/seed{seed}"
        predictions = pd.read_csv(run / f"{index}/{transfer}/predictions.tsv", sep="\t")
        reference = ad.read_h5ad(run / "model0/reference_embedding.h5ad").obs[config["groups"][group]["label_key"]].astype(str)
        share = reference.value_counts() / len(reference)
        rare = sorted(t for t in share.index if share[t] < 0.01 and (predictions["true_label"] == t).any())
        assert sorted(rows["cell_type"]) == rare
        for _, row in rows.iterrows():
            cells = predictions[predictions["true_label"] == row["cell_type"]]
            assert row["n_query"] == len(cells)
            assert row["accuracy"] == pytest.approx(np.mean(cells["prediction"] == row["cell_type"]))
    for name in ("rare_types", "expression_transfer"):
        assert (workdir / f"results/figures/{name}.png").read_bytes()[:4] == b"\x89PNG"


def check_mapping_scores(workdir: Path, config: dict, runs) -> None:
    """Presence AUROC (sklearn) and held-out-gene RMSE (numpy, M from the run's file) of ``runs`` equal their summary rows."""
    values = summary_values(workdir)
    settings = ExpressionSettings.from_config(config.get("expression_transfer"))
    for group, kind, method, index, transfer in runs:
        seed = config["seeds"][0]
        key = (group, method, index, transfer, seed)
        folder = workdir / f"results/{group}/{kind}/{method}/seed{seed}"
        predictions = pd.read_csv(folder / f"{index}/{transfer}/predictions.tsv", sep="\t")
        model = "model0/" if kind == "embeddings" else ""
        reference_obs = ad.read_h5ad(folder / f"{model}reference_embedding.h5ad").obs
        types = set(reference_obs[config["groups"][group]["label_key"]].astype(str))
        positive = predictions["true_label"].astype(str).isin(types)
        assert values[(*key, "presence_auroc")] == pytest.approx(roc_auc_score(positive, predictions["presence_score"]))
        if kind == "embeddings":
            M = sp.load_npz(folder / f"{index}/{transfer}/mapping.npz").toarray()
        else:
            M = ad.read_h5ad(folder / "query_embedding.h5ad").obsm["mapping"].toarray()
        data = workdir / f"results/{group}/seed{seed}"
        reference, query = ad.read_h5ad(data / "preprocessed/reference.h5ad"), ad.read_h5ad(data / "preprocessed/query.h5ad")
        hvg = pd.read_csv(data / "hvg.tsv", sep="\t")["gene"]
        genes = held_out_genes(reference.X, reference.var_names, hvg, n_genes=settings.n_genes, pool=settings.pool, seed=settings.seed)
        assert len(genes) == values[(*key, "expr_genes")] > 0 and not set(genes) & set(hvg)
        Y = reference[list(reference_obs.index), genes].X
        Y = Y.toarray() if sp.issparse(Y) else np.asarray(Y)
        measured = query[list(predictions["cell"].astype(str)), genes].X
        measured = measured.toarray() if sp.issparse(measured) else np.asarray(measured)
        weight = M.sum(axis=1)
        made = weight > 0
        predicted = (M[made] / weight[made, None]) @ Y
        assert values[(*key, "expr_rmse")] == pytest.approx(np.sqrt(np.mean((measured[made] - predicted) ** 2)), rel=1e-6)
        for metric in ("expr_pearson", "expr_spearman", "expr_jsd", "emb_distance", "emb_knn_preservation"):
            assert np.isfinite(values[(*key, metric)]), (key, metric)


def test_rare_types_table_and_figures(toy):
    check_rare_types(*toy)


def test_presence_and_expression_rows_of_the_kernel_transfer_and_cellmapper(toy):
    check_mapping_scores(*toy, [("simulated", "embeddings", "scvi_fast", "flat", "kernel"),
                                ("simulated", "predictors", "cellmapper", "native", "native")])
