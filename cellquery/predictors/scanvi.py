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

Defaults (scvi-tools 1.4.2; file:line under ``scvi/``). With no params every
``train`` call gets ``max_epochs=None`` and scvi-tools picks the epochs:
the scVI pre-training ``get_max_epochs_heuristic(n_obs)`` (400 epochs up to
20,000 cells, model/_utils.py:37-60); scANVI from a pre-trained scVI model
``min(10, max(2, round(heuristic / 3)))``, i.e. 10 epochs up to about 280,000 cells
(model/base/_training_mixin.py:440-444); the query surgery the heuristic on the
query's cells (a model from ``load_query_data`` is not ``was_pretrained``, so
the scVI rule applies). No label subsampling (``n_samples_per_label`` None,
model/base/_training_mixin.py:362; the scvi-tools tutorial sets 100).
Classifier: the scANVI default, one hidden layer of ``n_hidden`` units
(``linear_classifier`` False, model/_scanvi.py:126; module/_scanvae.py:138-144),
``classification_ratio`` 50 (train/_trainingplans.py:822). Architecture and the
surgery's ``weight_decay=0``: :mod:`cellquery.embed.scvi`.

Prediction: the classifier's probabilities (``predict(soft=True)``); the most
probable reference label is the prediction unless its probability is below
``min_probability`` (default 0.5), in which case the cell is ``rejected``.
scANVI itself never rejects: the threshold is the project's rule for turning
its class probability into a rejection, not a scvi-tools setting, and
``probability`` is kept as an extra column so other thresholds can be scored
from the predictions file. ``score`` is that probability, ``top_label`` the
most probable class before rejection, and ``min_probability`` is swept over
:data:`cellquery.predictors.SCORE_THRESHOLDS` (``sweep_<t>``: rejected below
probability t).

Continuous fates: scANVI predicts none. The fates reported are the mean over
the ``n_neighbors`` nearest reference cells in the scANVI latent space (exact
search, :mod:`cellquery.index` faiss ``Flat``), NaN for rejected cells.

The embedding is the scANVI latent space (reference and mapped query).
Training uses the GPU when the job asked for one (config ``gpu``,
:func:`cellquery.embed.scvi.train_kwargs`), else the CPU.
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.peer_tools import limited_torch_threads
from cellquery.predictors import MethodResult, neighbour_fates, score_sweep, timed

REQUIRES: tuple[str, ...] = ("counts",)
UNLABELED = "__unlabelled__"  # scANVI's category for cells without a label (the query)


def train_reference(
    reference: ad.AnnData, genes: Sequence[str], labels: np.ndarray, *, batch_key: str | None, seed: int,
    scanvi_epochs: int | None, n_samples_per_label: int | None, **scvi_options,
):
    """Steps 1-2: the scVI model of the reference, then scANVI trained from it with every reference label."""
    import scvi  # heavy: imported only when the method runs

    from cellquery.embed.scvi import reference_model, train_kwargs

    scvi_model, _ = reference_model(reference, genes, batch_key=batch_key, labels=labels, seed=seed, **scvi_options)
    model = scvi.model.SCANVI.from_scvi_model(scvi_model, unlabeled_category=UNLABELED)
    model.train(**train_kwargs(scanvi_epochs, scvi_options["batch_size"], "scANVI training"), n_samples_per_label=n_samples_per_label)
    return model


def query_probabilities(
    model, query: ad.AnnData, genes: Sequence[str], *, batch_key: str | None, query_epochs: int | None, batch_size: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Step 3: the query (all cells unlabelled) mapped by surgery; its class probabilities (cells x labels) and latent space."""
    import scvi

    from cellquery.embed.scvi import map_query

    query_model, qry = map_query(
        scvi.model.SCANVI, model, query, genes, batch_key=batch_key, labels=UNLABELED, query_epochs=query_epochs,
        batch_size=batch_size, seed=seed,
    )
    probabilities = query_model.predict(qry, soft=True)
    return probabilities, np.asarray(query_model.get_latent_representation(qry), dtype=np.float32)


def classify(probabilities: pd.DataFrame, min_probability: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The most probable class of each cell (``rejected`` below ``min_probability``), its probability, the rejected mask."""
    classes = np.asarray(probabilities.columns, dtype=str)
    prob = probabilities.to_numpy(float)
    top = prob.argmax(axis=1)
    best = prob[np.arange(len(prob)), top]
    prediction = classes[top].astype(object)
    rejected = best < min_probability
    prediction[rejected] = "rejected"
    return prediction, best, rejected


def latent_neighbours(ref_emb: np.ndarray, qry_emb: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Each query cell's ``n_neighbors`` nearest reference cells in the latent space (exact search)."""
    from cellquery.index import build_index

    _, neighbours = build_index("faiss", ref_emb, {"factory": "Flat"}).search(qry_emb, min(n_neighbors, len(ref_emb)))
    return neighbours


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
    scvi_epochs: int | None = None,
    scanvi_epochs: int | None = None,
    query_epochs: int | None = None,
    batch_size: int = 128,
    n_samples_per_label: int | None = None,
    min_probability: float = 0.5,  # the project's rejection rule (module docstring), not a scvi-tools setting
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
        Epochs of the scVI pre-training, the scANVI training and the query
        surgery; None: scvi-tools' own rule (module docstring).
    n_samples_per_label
        Labelled cells per label in each scANVI epoch (None: all, scvi-tools' default).
    min_probability
        Cells whose top class probability is below this are ``rejected``.
    n_neighbors
        Reference neighbours in the latent space whose fates are averaged.
    torch_threads
        Torch intra-op threads on CPU while the method runs (restored afterwards).
    """
    if not 0 <= min_probability <= 1:
        raise InputError(f"config: methods: scanvi min_probability must be in [0, 1], got {min_probability}")
    if (scanvi_epochs is not None and scanvi_epochs < 1) or n_neighbors < 1:
        raise InputError("config: methods: scanvi scanvi_epochs (unless unset) and n_neighbors must be >= 1")
    labels = reference.obs[label_key].astype(str).to_numpy()
    if UNLABELED in set(labels):
        raise InputError(f"reference: obs column {label_key!r} uses the reserved label {UNLABELED!r}")
    keys = list(continuous_keys)
    architecture = dict(n_latent=n_latent, n_layers=n_layers, n_hidden=n_hidden, max_epochs=scvi_epochs, batch_size=batch_size)
    timings: dict[str, float] = {}
    with limited_torch_threads(torch_threads):
        with timed(timings, "train_s"):
            model = train_reference(
                reference, genes, labels, batch_key=batch_key, seed=seed, scanvi_epochs=scanvi_epochs,
                n_samples_per_label=n_samples_per_label, **architecture,
            )
            ref_emb = np.asarray(model.get_latent_representation(), dtype=np.float32)
        with timed(timings, "query_s"):
            probabilities, qry_emb = query_probabilities(
                model, query, genes, batch_key=batch_key, query_epochs=query_epochs, batch_size=batch_size, seed=seed
            )
    with timed(timings, "transfer_s"):
        prediction, best, rejected = classify(probabilities, min_probability)
        top_label = classify(probabilities, 0.0)[0]  # the most probable class, never rejected
        fates = neighbour_fates(reference.obs, keys, latent_neighbours(ref_emb, qry_emb, n_neighbors), rejected) if keys else {}
        predictions = pd.DataFrame({
            "prediction": prediction, "probability": best, "top_label": top_label, "score": best, **fates,
            **score_sweep(top_label, best),
        })
    return MethodResult(predictions=predictions, reference_embedding=ref_emb, query_embedding=qry_emb, timings=timings)
