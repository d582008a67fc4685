"""CellMapper: k-NN + kernel mapping matrix from the reference to the query.

CellMapper (quadbio/cellmapper) finds each query cell's k nearest reference
cells in a joint space, turns the neighbour distances into kernel weights and
row-normalises them into a mapping matrix ``M`` (query x reference); every
annotation is then transferred as ``Y_query = M Y_reference``. A categorical
label is one-hot encoded, so a query cell gets the label with the largest
mapped weight and that weight as its confidence.

Here the joint space is the project's PCA of the reference HVGs
(:func:`cellquery.embed.pca.embed`, fitted on the reference, applied to the
query). Kernels:

* ``gauss``: ``exp(-d^2 / (2 sigma^2))`` with ``sigma`` the mean k-NN distance,
  computed from the query-to-reference graph alone (``only_yx=True``: no
  reference-reference graph, which is what keeps it usable on large references);
* ``hnoca``: the HNOCA-tools kernel, a squared Jaccard-type overlap of the
  query-reference, reference-reference and query-query k-NN graphs. It needs all
  four graphs (``only_yx=False``) and is therefore costlier.

Rejection: CellMapper has none of its own; a query cell whose label confidence
(the winning label's share of the kernel weight) is below ``min_confidence``
is ``rejected``. Continuous fates are the kernel-weighted means of the
reference fates (NaN for rejected cells, as in the project's transfer stage).

Extra columns: ``confidence`` and ``presence_score``. CellMapper's presence
score is defined per *reference* cell (column sums of the query-to-reference
connectivities, clipped to the 1st-99th percentile and min-max scaled, as in
HNOCA-tools); each query cell gets the kernel-weighted mean of its reference
neighbours' scores, ``M @ presence``.
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.predictors import MethodResult, fate_columns, timed

REQUIRES: tuple[str, ...] = ()
KERNELS = ("gauss", "hnoca")
KNN_METHODS = ("sklearn", "pynndescent", "faiss-cpu", "faiss-gpu", "rapids")
# kernels that need the reference-reference and query-query graphs too
_NEEDS_ALL_GRAPHS = {"hnoca", "jaccard"}


def check_params(n_obs: int, *, n_neighbors: int, kernel: str, knn_method: str, min_confidence: float) -> None:
    """Raise :class:`InputError` naming the parameter out of range (``n_obs``: reference cells)."""
    if kernel not in KERNELS:
        raise InputError(f"config: methods: cellmapper kernel {kernel!r} is not one of {', '.join(KERNELS)}")
    if knn_method not in KNN_METHODS:
        raise InputError(f"config: methods: cellmapper knn_method {knn_method!r} is not one of {', '.join(KNN_METHODS)}")
    if not 0 <= min_confidence <= 1:
        raise InputError(f"config: methods: cellmapper min_confidence must be in [0, 1], got {min_confidence}")
    if n_neighbors < 1 or n_neighbors > n_obs:
        raise InputError(f"config: methods: cellmapper n_neighbors must be in [1, {n_obs}], got {n_neighbors}")


def neighbour_mapper(
    reference: ad.AnnData, query: ad.AnnData, ref_emb: np.ndarray, qry_emb: np.ndarray, label_key: str, keys: Sequence[str],
    *, n_neighbors: int, kernel: str, knn_method: str, seed: int,
):
    """A ``CellMapper`` of the query on the reference in the joint space, with its k-NN graphs computed.

    Its AnnDatas are light copies: only what CellMapper reads (the obs
    columns to map, the joint space in ``obsm["X_emb"]``).
    """
    from cellmapper import CellMapper  # heavy: imported only when the method runs

    ref = ad.AnnData(
        obs=pd.DataFrame({label_key: reference.obs[label_key].astype(str).to_numpy()}, index=reference.obs_names),
        obsm={"X_emb": ref_emb},
    )
    for key in keys:
        ref.obs[key] = reference.obs[key].to_numpy(float)
    qry = ad.AnnData(obs=pd.DataFrame(index=query.obs_names), obsm={"X_emb": qry_emb})
    ref.obs[label_key] = pd.Categorical(ref.obs[label_key])
    mapper = CellMapper(qry, ref)
    mapper.compute_neighbors(
        n_neighbors=n_neighbors,
        use_rep="X_emb",
        knn_method=knn_method,
        random_state=seed,
        only_yx=kernel not in _NEEDS_ALL_GRAPHS,
    )
    return mapper


def map_annotations(mapper, label_key: str, keys: Sequence[str], *, kernel: str, min_confidence: float) -> pd.DataFrame:
    """Labels (``rejected`` below ``min_confidence``), fates, ``confidence`` and ``presence_score`` of the query cells."""
    mapper.compute_mapping_matrix(kernel_method=kernel)
    mapper.map_obs(label_key)
    qry = mapper.query
    labels = qry.obs[f"{label_key}_pred"].astype(str).to_numpy(dtype=object)
    confidence = qry.obs[f"{label_key}_conf"].to_numpy(float)
    rejected = confidence < min_confidence
    labels[rejected] = "rejected"
    fates = np.empty((len(labels), len(keys)))
    for j, key in enumerate(keys):
        mapper.map_obs(key)
        fates[:, j] = qry.obs[f"{key}_pred"].to_numpy(float)
    fates[rejected] = np.nan
    predictions = pd.DataFrame({"prediction": labels, **fate_columns(keys, fates)})
    mapper.compute_presence_score()
    presence = mapper.reference.obs["presence_score"].to_numpy(float)[:, None]
    mapped_presence = mapper.mapping_operator.apply(presence)
    mapped_presence = mapped_presence.toarray() if hasattr(mapped_presence, "toarray") else np.asarray(mapped_presence)
    predictions["confidence"] = confidence
    predictions["presence_score"] = np.asarray(mapped_presence, dtype=float).ravel()
    return predictions


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
    n_comps: int = 32,
    n_neighbors: int = 30,
    kernel: str = "gauss",
    knn_method: str = "sklearn",
    min_confidence: float = 0.5,
) -> MethodResult:
    """Map labels (and fates) from the reference to the query with CellMapper.

    Parameters
    ----------
    reference, query
        Preprocessed AnnDatas (log-normalised ``X``).
    genes
        Highly variable genes (the PCA's input).
    label_key, continuous_keys
        Reference obs columns to transfer.
    batch_key, ontology_key
        Unused (CellMapper has no batch model; CL ids follow the labels).
    seed
        Seeds the PCA and the k-NN search (pynndescent).
    n_comps
        PCA components of the joint space.
    n_neighbors
        Reference neighbours per query cell.
    kernel
        ``gauss`` (query-to-reference graph only) or ``hnoca`` (all four graphs).
    knn_method
        CellMapper's k-NN backend: ``sklearn``, ``pynndescent``, ``faiss-cpu`` ...
    min_confidence
        Query cells whose label confidence is below this are ``rejected``.
    """
    from cellquery.embed import pca

    check_params(reference.n_obs, n_neighbors=n_neighbors, kernel=kernel, knn_method=knn_method, min_confidence=min_confidence)
    keys = list(continuous_keys)
    timings: dict[str, float] = {}
    with timed(timings, "embed_s"):
        ref_emb, qry_emb = pca.embed(reference, query, genes, seed=seed, n_comps=n_comps)
    with timed(timings, "neighbors_s"):
        mapper = neighbour_mapper(
            reference, query, ref_emb, qry_emb, label_key, keys, n_neighbors=n_neighbors, kernel=kernel, knn_method=knn_method, seed=seed
        )
    with timed(timings, "transfer_s"):
        predictions = map_annotations(mapper, label_key, keys, kernel=kernel, min_confidence=min_confidence)
    return MethodResult(predictions=predictions, reference_embedding=ref_emb, query_embedding=qry_emb, timings=timings)
