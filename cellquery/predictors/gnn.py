"""Spatial GNN cell-type predictors (SpatialSSL): pretrained by masked expression (``gnn_pretrained``) or not (``gnn``).

The network is :class:`cellquery.spatial.gnn.SpatialGNN` (GCN and GAT layers
in plain torch, a linear decoder) on the group's genes (log-normalised
expression). Reference and query form one graph: query cells are joined to
their radius neighbours within their section (the group's ``spatial``
settings); reference cells without coordinates (a dissociated reference) have
no edges, so for them every layer sees the cell alone. (With a spatial
reference, its sections' radius graphs are used.)

* ``gnn_pretrained`` (the seed's pretrained arm): ``pretrain_epochs`` of masked
  pretraining on the whole graph, reference and query cells alike (all genes
  of ``mask_fraction`` of the cells masked and reconstructed; self-supervised,
  no label is used), then fine-tuning.
* ``gnn`` (not pretrained): the same architecture from the same initial
  weights, fine-tuned only.

Fine-tuning (:func:`cellquery.spatial.gnn.fine_tune`) trains the encoder and a
linear head with cross-entropy on the labelled reference cells. Each query cell
gets its most probable class; below ``min_probability`` (the project's
rejection rule, swept over :data:`cellquery.predictors.SCORE_THRESHOLDS`) it is
``rejected``. The query embedding is the encoder's output.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cellquery.errors import InputError
from cellquery.predictors import MethodResult, neighbour_fates, score_sweep, timed

REQUIRES: tuple[str, ...] = ("spatial",)


def joint_graph(reference: ad.AnnData, query: ad.AnnData, settings) -> sp.csr_matrix:
    """Block-diagonal adjacency of the reference's and the query's section graphs (reference rows first)."""
    from cellquery.spatial.settings import section_graph

    return sp.block_diag([section_graph(reference, settings), section_graph(query, settings)], format="csr")


def predict(
    reference: ad.AnnData,
    query: ad.AnnData,
    genes: Sequence[str],
    *,
    label_key: str,
    batch_key: str | None = None,
    continuous_keys: Sequence[str] = (),
    ontology_key: str | None = None,
    seed: int = 0,
    pretrain_epochs: int = 0,
    finetune_epochs: int = 100,
    hidden: int = 64,
    latent: int = 32,
    layers: Sequence[str] = ("gcn", "gat"),
    lr: float = 1e-2,
    mask_fraction: float = 0.2,
    min_probability: float = 0.5,
    n_neighbors: int = 15,
    torch_threads: int = 1,
) -> MethodResult:
    """Fine-tune the GNN on the reference's labels (after masked pretraining when ``pretrain_epochs`` > 0); predict the query."""
    from cellquery.device import torch_accelerator
    from cellquery.peer_tools import limited_torch_threads
    from cellquery.spatial.gnn import build_model, fine_tune, predict_proba, pretrain_masked, torch_graph
    from cellquery.spatial.settings import spatial_settings

    for name, value, low in (("pretrain_epochs", pretrain_epochs, 0), ("finetune_epochs", finetune_epochs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"config: methods: gnn {name} must be an integer >= {low}, got {value!r}")
    if not 0 <= min_probability <= 1:
        raise InputError(f"config: methods: gnn min_probability must be in [0, 1], got {min_probability}")
    settings = spatial_settings(query, "query")
    genes = list(genes)
    x = sp.vstack([sp.csr_matrix(reference[:, genes].X), sp.csr_matrix(query[:, genes].X)]).toarray().astype(np.float32)
    labels = reference.obs[label_key].astype(str).to_numpy()
    classes, codes = np.unique(labels, return_inverse=True)
    n_ref = reference.n_obs
    y = np.concatenate([codes, np.zeros(query.n_obs, dtype=int)])
    train = np.arange(len(x)) < n_ref
    device = "cuda" if torch_accelerator() == "gpu" else "cpu"  # the job's GPU request (config gpu)
    timings: dict[str, float] = {}
    curves: dict[str, list[float]] = {}  # loss per epoch: masked pretraining (MSE), fine-tuning (cross-entropy)
    with limited_torch_threads(torch_threads):
        graph = torch_graph(joint_graph(reference, query, settings), device=device)
        model = build_model(len(genes), seed=seed, hidden=hidden, latent=latent, layers=tuple(layers))
        if pretrain_epochs:
            with timed(timings, "pretrain_s"):
                curves["pretrain"] = pretrain_masked(model, x, graph, mask_fraction=mask_fraction, epochs=pretrain_epochs, lr=lr,
                                                     seed=seed, device=device)
        with timed(timings, "train_s"):
            head, curves["finetune"] = fine_tune(model, x, graph, y, train, n_classes=len(classes), epochs=finetune_epochs, lr=lr, seed=seed, device=device)
        with timed(timings, "query_s"):
            import torch

            probabilities = predict_proba(model, head, x, graph, device=device)
            with torch.no_grad():
                model.eval()
                embedding = model.embed(torch.as_tensor(x, device=device), graph).cpu().numpy().astype(np.float32)
    prob = probabilities[n_ref:]
    best = prob.max(axis=1)
    top_label = classes[prob.argmax(axis=1)].astype(object)
    prediction = np.where(best >= min_probability, top_label, "rejected").astype(object)
    ref_emb, qry_emb = embedding[:n_ref], embedding[n_ref:]
    keys = list(continuous_keys)
    fates = {}
    if keys:
        from cellquery.predictors.scanvi import latent_neighbours

        fates = neighbour_fates(reference.obs, keys, latent_neighbours(ref_emb, qry_emb, n_neighbors), best < min_probability)
    predictions = pd.DataFrame({
        "prediction": prediction, "probability": best, "top_label": top_label, "score": best, **fates,
        **score_sweep(top_label, best),
    })
    return MethodResult(predictions=predictions, reference_embedding=ref_emb, query_embedding=qry_emb, timings=timings,
                        curves=curves)


def _pretrained(reference, query, genes, *, pretrain_epochs: int = 100, **kwargs) -> MethodResult:
    """``gnn_pretrained``: :func:`predict` with masked pretraining (``pretrain_epochs`` >= 1)."""
    if isinstance(pretrain_epochs, bool) or not isinstance(pretrain_epochs, int) or pretrain_epochs < 1:
        raise InputError(f"config: methods: gnn_pretrained pretrain_epochs must be an integer >= 1, got {pretrain_epochs!r}")
    return predict(reference, query, genes, pretrain_epochs=pretrain_epochs, **kwargs)


# registered as "cellquery.predictors.gnn:pretrained" (the pretrained arm of the comparison)
pretrained = SimpleNamespace(REQUIRES=REQUIRES, predict=_pretrained)
