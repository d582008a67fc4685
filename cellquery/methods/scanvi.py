"""scANVI label prediction (scvi-tools), with the query mapped by scArches surgery.

scANVI (Xu et al. 2021) adds a cell-type classifier on the latent space of a
scVI model. The reference workflow of scvi-tools is followed:

1. an ``SCVI`` model on the reference's raw counts of the HVGs, with the
   group's batch key as batch covariate (:func:`cellquery.embed.scvi.reference_model`);
2. ``SCANVI.from_scvi_model`` with the reference labels (every reference cell
   labelled), trained for ``scanvi_epochs``;
3. the query (all cells unlabelled) mapped by scArches surgery:
   ``SCANVI.load_query_data`` + ``train`` for ``query_epochs`` with
   ``weight_decay=0``, which fits only the query's new batch weights. The
   alternative, semi-supervised training on reference + unlabelled query
   together, would retrain the whole model for every query; surgery keeps the
   reference model fixed, as a reference atlas is used in practice.

Prediction: the classifier's probabilities (``predict(soft=True)``); the most
probable reference label is the prediction unless its probability is below
``min_probability`` (default 0.5), in which case the cell is ``rejected``.
scANVI itself never rejects; this threshold is the usual way to turn its
class probability into a rejection, and ``probability`` is kept as an extra
column so other thresholds can be scored from the predictions file.

Continuous fates: scANVI predicts none. The fates reported are the mean over
the ``n_neighbors`` nearest reference cells in the scANVI latent space (exact
search, :mod:`cellquery.index` faiss ``Flat``), NaN for rejected cells.

The embedding is the scANVI latent space (reference and mapped query).
Training uses a GPU when torch sees one (``accelerator="auto"``).
"""

from __future__ import annotations

import time
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.methods import MethodResult

REQUIRES: tuple[str, ...] = ("counts",)
UNLABELED = "__unlabelled__"  # scANVI's category for cells without a label (the query)


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
    n_latent: int = 10,
    n_layers: int = 1,
    n_hidden: int = 128,
    scvi_epochs: int = 100,
    scanvi_epochs: int = 20,
    query_epochs: int = 20,
    batch_size: int = 128,
    n_samples_per_label: int = 100,
    min_probability: float = 0.5,
    n_neighbors: int = 15,
    torch_threads: int = 1,
) -> MethodResult:
    """Train scVI + scANVI on the reference, map the query by surgery, predict its labels.

    Parameters
    ----------
    reference, query
        Preprocessed AnnDatas with raw counts in ``layers["counts"]``.
    genes
        HVGs the models are fitted on.
    label_key, batch_key, continuous_keys
        The group's reference obs columns (``batch_key`` None: no batch covariate).
    ontology_key
        Unused (CL ids follow the labels).
    seed
        ``scvi.settings.seed``.
    n_latent, n_layers, n_hidden, batch_size
        Architecture and minibatch size (scvi-tools defaults 10, 1, 128, 128).
    scvi_epochs, scanvi_epochs, query_epochs
        Epochs of the scVI pre-training, the scANVI training and the query surgery.
    n_samples_per_label
        Labelled cells per label in each scANVI epoch (scvi-tools tutorial: 100).
    min_probability
        Cells whose top class probability is below this are ``rejected``.
    n_neighbors
        Reference neighbours in the latent space whose fates are averaged.
    torch_threads
        Torch intra-op threads on CPU while the method runs (restored afterwards).
    """
    from cellquery.embed.scvi import limited_torch_threads, map_query, query_adata, reference_model, train_kwargs

    if not 0 <= min_probability <= 1:
        raise InputError(f"config: methods: scanvi min_probability must be in [0, 1], got {min_probability}")
    if scanvi_epochs < 1 or n_neighbors < 1:
        raise InputError("config: methods: scanvi scanvi_epochs and n_neighbors must be >= 1")
    keys = list(continuous_keys)
    for key in [label_key, *keys]:
        if key not in reference.obs:
            raise InputError(f"reference: obs column {key!r} is missing")
    labels = reference.obs[label_key].astype(str).to_numpy()
    if UNLABELED in set(labels):
        raise InputError(f"reference: obs column {label_key!r} uses the reserved label {UNLABELED!r}")

    import scvi  # heavy: imported only when the method runs

    timings: dict[str, float] = {}
    with limited_torch_threads(torch_threads):
        start = time.perf_counter()
        scvi_model, _ = reference_model(
            reference, genes, batch_key=batch_key, labels=labels, seed=seed, n_latent=n_latent,
            n_layers=n_layers, n_hidden=n_hidden, max_epochs=scvi_epochs, batch_size=batch_size,
        )
        model = scvi.model.SCANVI.from_scvi_model(scvi_model, unlabeled_category=UNLABELED)
        model.train(**train_kwargs(scanvi_epochs, batch_size), n_samples_per_label=n_samples_per_label)
        ref_emb = np.asarray(model.get_latent_representation(), dtype=np.float32)
        timings["train_s"] = time.perf_counter() - start

        start = time.perf_counter()
        qry = query_adata(query, genes, batch_key=batch_key, labels=UNLABELED)
        query_model = map_query(
            scvi.model.SCANVI, model, qry, batch_key=batch_key, query_epochs=query_epochs, batch_size=batch_size, seed=seed
        )
        probabilities = query_model.predict(qry, soft=True)
        qry_emb = np.asarray(query_model.get_latent_representation(qry), dtype=np.float32)
        timings["query_s"] = time.perf_counter() - start

    start = time.perf_counter()
    classes = np.asarray(probabilities.columns, dtype=str)
    prob = probabilities.to_numpy(float)
    top = prob.argmax(axis=1)
    best = prob[np.arange(len(prob)), top]
    prediction = classes[top].astype(object)
    rejected = best < min_probability
    prediction[rejected] = "rejected"
    predictions = pd.DataFrame({"prediction": prediction, "probability": best})
    if keys:
        from cellquery.index import build_index

        _, neighbours = build_index("faiss", ref_emb, {"factory": "Flat"}).search(qry_emb, min(n_neighbors, len(ref_emb)))
        fates = reference.obs[keys].to_numpy(float)[neighbours].mean(axis=1)
        fates[rejected] = np.nan
        for j, key in enumerate(keys):
            predictions[f"pred_{key}"] = fates[:, j]
    timings["transfer_s"] = time.perf_counter() - start
    return MethodResult(predictions=predictions, reference_embedding=ref_emb, query_embedding=qry_emb, timings=timings)
