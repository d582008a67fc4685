"""Symphony (symphonypy): a Harmony-integrated reference, the query mapped into it, k-NN label transfer.

Symphony (Kang et al., Nat. Commun. 2021) compresses a Harmony integration of
the reference (its soft clusters and their centroids) so that query cells can
be mapped into the integrated space without re-running the integration: the
query is projected onto the reference PCs, softly assigned to the reference
clusters and corrected for its own batches by the same mixture-of-experts
regression Harmony uses. Labels are then transferred by a k-NN classifier in
the integrated space. ``symphonypy`` is the Python port; the steps are its
documented workflow:

1. reference: the log-normalised values of the project's HVGs, scaled
   (``sc.pp.scale(max_value=10)``, whose gene means and SDs Symphony reuses for
   the query), PCA without re-centring (``sc.pp.pca(zero_center=False)``);
2. ``sp.pp.harmony_integrate`` on the reference's batches (the group's
   ``batch_key``; skipped, as symphonypy says to, when the reference has one
   batch: ``map_embedding`` then clusters the reference PCs by soft k-means);
3. ``sp.tl.map_embedding`` of the query (log-normalised values, corrected
   for the query's own ``batch_key`` where it has one);
4. ``sp.tl.transfer_labels_kNN`` in the integrated space;
   ``sp.tl.per_cell_confidence`` gives each query cell's mapping distance
   (Mahalanobis distance to the reference clusters, weighted by its cluster
   memberships; larger: worse mapped).

Defaults (symphonypy 0.2.4 with harmonypy 2.1.0; file:line in the installed
packages): 30 PCs (``n_comps=30`` of the package's workflow); Harmony
(harmonypy/harmony.py:178-197): ``theta`` 2, ``sigma`` 0.1, ``nclust``
min(N/30, 100), ``max_iter_harmony`` 10, ``lamb`` estimated from ``alpha``
0.2, ``random_state`` the run seed (``harmony_integrate(random_seed)``,
symphonypy/pp.py:13-22); ``map_embedding`` (symphonypy/tl.py:278-290): ridge
``lamb`` 1 for the query correction, the reference's ``sigma``; soft k-means
without Harmony: K = min(round(N/30), 100), ``sigma`` 0.1
(symphonypy/_utils.py:353-365; its KMeans draws from numpy's global random
state, seeded here with the run seed); ``transfer_labels_kNN``
(symphonypy/tl.py:417-453): scikit-learn's ``KNeighborsClassifier()``, i.e.
``n_neighbors`` 5, uniform weights, Euclidean (Symphony R's ``knnPredict``
also uses k = 5). harmonypy runs on ``ncores`` 1 thread (the rule's one;
its results are the same for any value).

Score and rejection: ``score`` is the k-NN confidence, the share of the k
neighbours that carry the transferred label (Symphony R's ``knnPredict``
confidence; symphonypy's classifier does not report it, so it is counted
over the same ``KNeighborsClassifier``'s neighbours). Symphony does not
reject; the project's rule rejects a cell whose confidence is below
``min_confidence`` (0.5, as for CellMapper and scANVI), and at every cut-off of
:data:`cellquery.predictors.SCORE_THRESHOLDS` (``sweep_<t>``) for the rejection
sweep. The mapping distance is
kept as ``mapping_distance``; ``top_label`` is the label before rejection.
Continuous fates: the mean over the same k reference neighbours (NaN for
rejected cells); the mapping matrix M gives the same k neighbours 1 / k each
(every cell, rejected or not), through which held-out genes are transferred and scored. Embedding: the integrated space (reference Harmony
coordinates, query Symphony coordinates).
"""

from __future__ import annotations

import importlib.util
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from cellquery.embed.pca import dense
from cellquery.errors import InputError
from cellquery.predictors import MethodResult, neighbour_fates, neighbour_mapping, score_sweep, timed, vote_share

REQUIRES: tuple[str, ...] = ()
ADJUSTED = "X_pca_harmony"  # symphonypy's key of the integrated space (reference and mapped query)


def runtime_missing() -> str | None:
    """Why Symphony cannot run here (symphonypy or harmonypy not installed), or None."""
    missing = [name for name in ("symphonypy", "harmonypy") if importlib.util.find_spec(name) is None]
    if missing:
        return f"needs {' and '.join(missing)} (pip, pinned in pyproject.toml), not installed"
    return None


def build_reference(
    reference: ad.AnnData, genes: Sequence[str], label_key: str, batch_key: str | None, *, n_comps: int, seed: int,
    ncores: int,
) -> ad.AnnData:
    """Steps 1-2: the scaled, PCA-reduced reference HVGs, Harmony-integrated on ``batch_key`` where it has 2+ batches."""
    import scanpy as sc
    import symphonypy as sp

    obs = pd.DataFrame({label_key: reference.obs[label_key].astype(str).to_numpy()}, index=reference.obs_names)
    integrate = batch_key is not None and reference.obs[batch_key].nunique() > 1
    if integrate:
        obs[batch_key] = reference.obs[batch_key].astype(str).to_numpy()
    ref = ad.AnnData(X=dense(reference[:, list(genes)].X).astype(np.float64), obs=obs, var=pd.DataFrame(index=list(genes)))
    sc.pp.scale(ref, max_value=10)  # stores var["mean"], var["std"]: the query is scaled with them
    sc.pp.pca(ref, n_comps=n_comps, zero_center=False, random_state=seed)
    if integrate:
        sp.pp.harmony_integrate(ref, key=batch_key, random_seed=seed, ncores=ncores)
    return ref


def map_query(ref: ad.AnnData, query: ad.AnnData, genes: Sequence[str], batch_key: str | None, *, seed: int) -> ad.AnnData:
    """Step 3: the query mapped into the reference's integrated space (``obsm[ADJUSTED]``), with its mapping distance."""
    import symphonypy as sp

    key = batch_key if batch_key is not None and batch_key in query.obs else None
    obs = pd.DataFrame(index=query.obs_names)
    if key is not None:
        obs[key] = query.obs[key].astype(str).to_numpy()
    qry = ad.AnnData(X=dense(query[:, list(genes)].X).astype(np.float64), obs=obs, var=pd.DataFrame(index=list(genes)))
    qry.uns["log1p"] = {"base": None}  # the values are log1p-normalised (symphonypy checks for this key)
    np.random.seed(seed)  # the soft k-means of a reference without Harmony draws from numpy's global state
    sp.tl.map_embedding(qry, ref, key=key, use_genes_column=None)
    sp.tl.per_cell_confidence(qry, ref, ref_basis_adjusted=ref.uns["harmony"]["ref_basis_adjusted"], query_basis_adjusted=ADJUSTED)
    return qry


def knn_transfer(ref: ad.AnnData, qry: ad.AnnData, label_key: str, *, n_neighbors: int):
    """Step 4: symphonypy's k-NN labels; the same classifier's confidence and each cell's neighbours."""
    import symphonypy as sp
    from sklearn.neighbors import KNeighborsClassifier

    ref_basis = ref.uns["harmony"]["ref_basis_adjusted"]
    sp.tl.transfer_labels_kNN(qry, ref, label_key, ref_basis=ref_basis, query_basis=ADJUSTED, n_neighbors=n_neighbors)
    labels = qry.obs[label_key].astype(str).to_numpy(dtype=object)
    # the classifier's neighbours; with uniform weights its predict_proba of a label is their vote share
    knn = KNeighborsClassifier(n_neighbors=n_neighbors).fit(ref.obsm[ref_basis], ref.obs[label_key].astype(str))
    neighbours = knn.kneighbors(qry.obsm[ADJUSTED], return_distance=False)
    confidence = vote_share(ref.obs[label_key].astype(str).to_numpy(), neighbours, labels)
    return labels, confidence, neighbours, ref_basis


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
    n_comps: int = 30,
    n_neighbors: int = 5,
    min_confidence: float = 0.5,  # the project's rejection rule (module docstring), not a Symphony setting
    ncores: int = 1,
) -> MethodResult:
    """Build a Symphony reference, map the query into it and transfer labels by k-NN.

    Parameters
    ----------
    reference, query
        Preprocessed AnnDatas (log-normalised ``X``).
    genes
        HVGs (the reference PCA's genes).
    label_key, continuous_keys
        Reference obs columns to transfer.
    batch_key
        Batches Harmony integrates in the reference and Symphony corrects in the query (None: none).
    ontology_key
        Unused (CL ids follow the labels).
    seed
        Seeds the PCA, Harmony and the soft k-means.
    n_comps
        Reference PCs (30, the package's workflow).
    n_neighbors
        k of the k-NN label transfer (5, scikit-learn's and Symphony's default).
    min_confidence
        Cells whose k-NN confidence is below it are ``rejected`` (the project's rule).
    ncores
        harmonypy threads.
    """
    if not 0 <= min_confidence <= 1:
        raise InputError(f"config: methods: symphony min_confidence must be in [0, 1], got {min_confidence}")
    if not 1 <= n_neighbors <= reference.n_obs:
        raise InputError(f"config: methods: symphony n_neighbors must be in [1, {reference.n_obs}], got {n_neighbors}")
    if not 1 <= n_comps < min(reference.n_obs, len(genes)):
        raise InputError(f"config: methods: symphony n_comps must be in [1, {min(reference.n_obs, len(genes)) - 1}], got {n_comps}")
    from cellquery.transfer import REJECTED

    keys = list(continuous_keys)
    timings: dict[str, float] = {}
    with timed(timings, "train_s"):
        ref = build_reference(reference, genes, label_key, batch_key, n_comps=n_comps, seed=seed, ncores=ncores)
    with timed(timings, "query_s"):
        qry = map_query(ref, query, genes, batch_key, seed=seed)
        labels, confidence, neighbours, ref_basis = knn_transfer(ref, qry, label_key, n_neighbors=n_neighbors)
    rejected = confidence < min_confidence
    predictions = pd.DataFrame({
        "prediction": np.where(rejected, REJECTED, labels),
        "score": confidence,
        "mapping_distance": qry.obs["symphony_per_cell_dist"].to_numpy(float),
        "top_label": labels,
        **score_sweep(labels, confidence),  # the rejection rule at every cut-off of the grid
    })
    if keys:
        for column, values in neighbour_fates(reference.obs, keys, neighbours, rejected).items():
            predictions[column] = values
    return MethodResult(
        predictions=predictions,
        reference_embedding=np.asarray(ref.obsm[ref_basis], dtype=np.float32),
        query_embedding=np.asarray(qry.obsm[ADJUSTED], dtype=np.float32),
        timings=timings,
        mapping=neighbour_mapping(neighbours, reference.n_obs),
    )
