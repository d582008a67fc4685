"""CellMapper: k-NN + kernel mapping matrix from the reference to the query.

CellMapper (quadbio/cellmapper) finds each query cell's k nearest reference
cells in a joint space, turns the neighbour distances into kernel weights and
row-normalises them into a mapping matrix ``M`` (query x reference); every
annotation is then transferred as ``Y_query = M Y_reference``. A categorical
label is one-hot encoded, so a query cell gets the label with the largest
mapped weight and that weight as its confidence.

Joint space (``representation``):

* ``fast_cca`` (default): CellMapper's own joint space when no representation
  is given (``compute_neighbors(use_rep=None)`` falls back to
  ``fallback_representation="fast_cca"``, model/cellmapper.py:117, 186-188): a
  Seurat-v3-like CCA of the query's and reference's log-normalised HVGs, the
  SVD of their cross-covariance, ``PackageConstants.N_COMPS`` = 50 components
  (constants.py:4, utils.py:196-200), each cell's vector L2-scaled
  (``compute_fast_cca`` defaults, model/embedding.py:52-62);
* ``pca``: the project's PCA of the reference HVGs
  (:func:`cellquery.embed.pca.embed`, fitted on the reference, applied to the query).

Defaults (cellmapper 0.2.5): ``n_neighbors`` 30, ``knn_method`` "sklearn"
(exact), Euclidean distance (model/cellmapper.py:109-113); kernel "gauss", the
cross-mapping default (``PackageConstants.DEFAULT_CROSS_MAPPING_KERNEL_METHOD``,
constants.py:10), without symmetrisation or self-edges (model/cellmapper.py:
286-289); ``map_obs`` with ``t`` None (one step, no diffusion). Kernels:

* ``gauss``: ``exp(-d^2 / (2 sigma^2))`` with ``sigma`` the mean k-NN distance,
  computed from the query-to-reference graph alone. Only that graph is
  computed (``only_yx=True``; the package's default False also builds the
  reference-reference and query-query graphs, which connectivity kernels such
  as gauss never read, model/kernel.py:279-292): the same mapping at less cost;
* ``hnoca``: the HNOCA-tools kernel, a squared Jaccard-type overlap of the
  query-reference, reference-reference and query-query k-NN graphs. It needs all
  four graphs (``only_yx=False``) and is therefore costlier.

Rejection: CellMapper has none of its own. The project's rule: a query cell
whose label confidence (the winning label's share of the kernel weight) is
below ``min_confidence`` (default 0.5) is ``rejected``. Continuous fates are
the kernel-weighted means of the reference fates (NaN for rejected cells, as
in the project's transfer stage).

Score and sweep: ``score`` is the label confidence, and ``min_confidence``
is swept over :data:`cellquery.predictors.SCORE_THRESHOLDS` (``sweep_<t>``:
rejected below confidence t).

Mapping matrix: ``mapping_operator.matrix`` is returned as the result's
``mapping`` (the query embedding file's ``obsm["mapping"]``), through which
the metrics stage transfers held-out genes as ``map_layers`` would
(:mod:`cellquery.transfer.expression`).

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
from cellquery.predictors import MethodResult, fate_columns, score_sweep, timed

REQUIRES: tuple[str, ...] = ()
KERNELS = ("gauss", "hnoca")
REPRESENTATIONS = ("fast_cca", "pca")
KNN_METHODS = ("sklearn", "pynndescent", "faiss-cpu", "faiss-gpu", "rapids")
# kernels that need the reference-reference and query-query graphs too
_NEEDS_ALL_GRAPHS = {"hnoca", "jaccard"}


def check_params(
    n_obs: int, *, n_neighbors: int, kernel: str, knn_method: str, min_confidence: float, representation: str = "fast_cca"
) -> None:
    """Raise :class:`InputError` naming the parameter out of range (``n_obs``: reference cells)."""
    if representation not in REPRESENTATIONS:
        raise InputError(f"config: methods: cellmapper representation {representation!r} is not one of {', '.join(REPRESENTATIONS)}")
    if kernel not in KERNELS:
        raise InputError(f"config: methods: cellmapper kernel {kernel!r} is not one of {', '.join(KERNELS)}")
    if knn_method not in KNN_METHODS:
        raise InputError(f"config: methods: cellmapper knn_method {knn_method!r} is not one of {', '.join(KNN_METHODS)}")
    if not 0 <= min_confidence <= 1:
        raise InputError(f"config: methods: cellmapper min_confidence must be in [0, 1], got {min_confidence}")
    if n_neighbors < 1 or n_neighbors > n_obs:
        raise InputError(f"config: methods: cellmapper n_neighbors must be in [1, {n_obs}], got {n_neighbors}")


def light_adatas(
    reference: ad.AnnData, query: ad.AnnData, genes: Sequence[str], label_key: str, keys: Sequence[str]
) -> tuple[ad.AnnData, ad.AnnData]:
    """Light copies of what CellMapper reads: the obs columns to map and the log-normalised HVGs in ``X``."""
    ref = ad.AnnData(
        X=reference[:, list(genes)].X,
        obs=pd.DataFrame({label_key: pd.Categorical(reference.obs[label_key].astype(str).to_numpy())}, index=reference.obs_names),
        var=pd.DataFrame(index=list(genes)),
    )
    for key in keys:
        ref.obs[key] = reference.obs[key].to_numpy(float)
    qry = ad.AnnData(X=query[:, list(genes)].X, obs=pd.DataFrame(index=query.obs_names), var=pd.DataFrame(index=list(genes)))
    return ref, qry


def joint_space(
    reference: ad.AnnData, query: ad.AnnData, genes: Sequence[str], label_key: str, keys: Sequence[str],
    *, representation: str, n_comps: int | None, seed: int,
):
    """A ``CellMapper`` of the query on the reference, with the joint space in both AnnDatas' ``obsm["X_emb"]``.

    ``fast_cca`` is what ``compute_neighbors(use_rep=None)`` computes by itself
    (``compute_fast_cca(n_comps=None)``: 50 components); it is called here so
    that its time is the embedding's. ``n_comps`` None: 50 (CellMapper's
    ``PackageConstants.N_COMPS``) for either space.
    """
    from cellmapper import CellMapper  # heavy: imported only when the method runs
    from cellmapper.constants import PackageConstants

    from cellquery.embed import pca

    ref, qry = light_adatas(reference, query, genes, label_key, keys)
    mapper = CellMapper(qry, ref)
    if representation == "fast_cca":
        mapper.compute_fast_cca(n_comps=n_comps, key_added="X_emb", random_state=seed)
    else:
        n = PackageConstants.N_COMPS if n_comps is None else n_comps
        ref.obsm["X_emb"], qry.obsm["X_emb"] = pca.embed(reference, query, genes, seed=seed, n_comps=n)
    return mapper


def compute_graphs(mapper, *, n_neighbors: int, kernel: str, knn_method: str, seed: int) -> None:
    """The k-NN graphs in the joint space: query-to-reference only unless the kernel needs all four (module docstring)."""
    mapper.compute_neighbors(
        n_neighbors=n_neighbors,
        use_rep="X_emb",
        knn_method=knn_method,
        random_state=seed,
        only_yx=kernel not in _NEEDS_ALL_GRAPHS,
    )


def map_annotations(mapper, label_key: str, keys: Sequence[str], *, kernel: str, min_confidence: float) -> pd.DataFrame:
    """Labels (``rejected`` below ``min_confidence``), fates, ``confidence``, ``presence_score``, ``score`` and
    ``sweep_<t>`` columns (rejected below confidence t) of the query cells."""
    mapper.compute_mapping_matrix(kernel_method=kernel)
    mapper.map_obs(label_key)
    qry = mapper.query
    labels = qry.obs[f"{label_key}_pred"].astype(str).to_numpy(dtype=object)
    confidence = qry.obs[f"{label_key}_conf"].to_numpy(float)
    sweep = score_sweep(labels, confidence)  # the rejection rule at every cut-off of the grid
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
    predictions["score"] = confidence
    for column, values in sweep.items():
        predictions[column] = values
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
    representation: str = "fast_cca",
    n_comps: int | None = None,
    n_neighbors: int = 30,
    kernel: str = "gauss",
    knn_method: str = "sklearn",
    min_confidence: float = 0.5,  # the project's rejection rule, not a CellMapper setting
) -> MethodResult:
    """Map labels (and fates) from the reference to the query with CellMapper.

    Parameters
    ----------
    reference, query
        Preprocessed AnnDatas (log-normalised ``X``).
    genes
        Highly variable genes (the joint space's input).
    label_key, continuous_keys
        Reference obs columns to transfer.
    batch_key, ontology_key
        Unused (CellMapper has no batch model; CL ids follow the labels).
    seed
        Seeds the joint space (fast CCA's SVD or the PCA) and the k-NN search (pynndescent).
    representation
        Joint space: ``fast_cca`` (CellMapper's default) or ``pca`` (module docstring).
    n_comps
        Components of the joint space (None: CellMapper's 50).
    n_neighbors
        Reference neighbours per query cell (CellMapper's default 30).
    kernel
        ``gauss`` (CellMapper's default for query-to-reference mapping) or ``hnoca`` (all four graphs).
    knn_method
        CellMapper's k-NN backend: ``sklearn`` (default), ``pynndescent``, ``faiss-cpu`` ...
    min_confidence
        Query cells whose label confidence is below this are ``rejected`` (the project's rule).
    """
    check_params(
        reference.n_obs, n_neighbors=n_neighbors, kernel=kernel, knn_method=knn_method, min_confidence=min_confidence,
        representation=representation,
    )
    keys = list(continuous_keys)
    timings: dict[str, float] = {}
    with timed(timings, "embed_s"):
        mapper = joint_space(reference, query, genes, label_key, keys, representation=representation, n_comps=n_comps, seed=seed)
    with timed(timings, "neighbors_s"):
        compute_graphs(mapper, n_neighbors=n_neighbors, kernel=kernel, knn_method=knn_method, seed=seed)
    with timed(timings, "transfer_s"):
        predictions = map_annotations(mapper, label_key, keys, kernel=kernel, min_confidence=min_confidence)
    ref_emb = np.asarray(mapper.reference.obsm["X_emb"], dtype=np.float32)
    qry_emb = np.asarray(mapper.query.obsm["X_emb"], dtype=np.float32)
    # CellMapper's mapping matrix (mapping_operator.matrix, rows normalised): map_layers is M . X_reference
    mapping = mapper.mapping_operator.matrix
    return MethodResult(
        predictions=predictions, reference_embedding=ref_emb, query_embedding=qry_emb, timings=timings, mapping=mapping
    )
