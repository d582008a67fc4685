"""scanpy ``tl.ingest``: the classic PCA + k-NN label-transfer baseline.

As in scanpy's ingest tutorial: PCA of the reference's log-normalised HVGs
(``sc.pp.pca``), the reference k-NN graph (``sc.pp.neighbors`` with
``n_pcs``), then ``Ingest`` projects the query onto the reference PCs, finds
each query cell's ``n_neighbors`` reference neighbours with the reference's
pynndescent index and gives it the most frequent label among them
(``map_labels(method="knn")``). Two properties of ingest are kept as they are:
the query is centred on its *own* gene means before projection (ingest's
``_pca``), and labels are a plain mode of the k neighbours.

Defaults (scanpy 1.11.5), as ``sc.pp.pca(ref); sc.pp.neighbors(ref);
sc.tl.ingest(query, ref, obs=label)`` runs them: ``n_comps`` None, i.e.
``settings.N_PCS`` = 50 components, fewer only where the data have fewer
dimensions (preprocessing/_pca/__init__.py:232-234, _settings/__init__.py:470);
``n_neighbors`` 15, Euclidean (neighbors/__init__.py:74-81); ingest's
``labeling_method`` "knn" with the reference graph's k (tools/_ingest.py:43).

No rejection: ingest has none, so every query cell gets a reference label
(never ``rejected`` or ``ambiguous``); its MBA on negative types is 0 by
construction. Its ``score`` is the winning label's share of the k neighbours'
votes (the fraction of neighbours carrying the label it gave). ingest maps no
continuous annotation; the fates reported here are the mean over the same k
neighbours (``pred_<key>``), so that fate metrics exist for it. Its mapping
matrix M (query x reference) gives each of those k neighbours weight 1 / k,
the plain vote's own weighting, so that held-out genes and embeddings are
transferred and scored for ingest as for the project's transfers and CellMapper.

Neighbour search: scanpy's ``Ingest`` indexes the reference with pynndescent.
With scanpy 1.11.5 and pynndescent 0.7.0 that path fails (``Ingest`` rebuilds
the forest with ``n_trees = NNDescent.n_search_trees``, which pynndescent 0.7
leaves at None), and where it is patched, NN-descent's numba compilation
alone takes about 60 s per process, longer than the whole method on
benchmark-sized data. :class:`_Ingest` therefore overrides the two methods that
touch pynndescent, ``_init_pynndescent`` and ``neighbors``, with an exact
Euclidean search (scikit-learn) on the same representation; the reference
graph is built with ``transformer="sklearn"`` and ``method="gauss"`` for the
same reason (ingest reads only its parameters and distances, not its weights). Everything
else (choice of representation, query projection, the label vote,
``to_adata``) is scanpy's code. The graph is built with ``n_pcs`` (not
``use_rep="X_pca"``), so query and index have the same number of components.
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from cellquery.embed.pca import dense
from cellquery.errors import InputError
from cellquery.predictors import MethodResult, neighbour_fates, neighbour_mapping, timed, vote_share

REQUIRES: tuple[str, ...] = ()


def _ingest_class():
    """scanpy's ``Ingest`` with an exact neighbour search in place of pynndescent (module docstring)."""
    import scanpy as sc
    from sklearn.neighbors import NearestNeighbors

    class _Ingest(sc.tl.Ingest):
        def _init_pynndescent(self, distances):
            self._nn_index = NearestNeighbors(metric=self._metric, metric_params=self._metric_kwds or None)
            self._nn_index.fit(np.asarray(self._rep))

        def neighbors(self, k=None, queue_size=5, epsilon=0.1, random_state=0):
            k = self._n_neighbors if k is None else k
            self._distances, self._indices = self._nn_index.kneighbors(np.asarray(self._obsm["rep"]), n_neighbors=k)

    return _Ingest


def reference_ingest(reference: ad.AnnData, genes: list[str], label_key: str, *, n_comps: int, n_neighbors: int, seed: int):
    """The reference AnnData with its PCA and k-NN graph (scanpy), and the ``Ingest`` that maps query cells onto it."""
    import scanpy as sc

    ref = ad.AnnData(
        X=dense(reference[:, genes].X),
        obs=pd.DataFrame({label_key: pd.Categorical(reference.obs[label_key].astype(str))}, index=reference.obs_names),
        var=pd.DataFrame(index=genes),
    )
    sc.pp.pca(ref, n_comps=n_comps, random_state=seed)
    sc.pp.neighbors(ref, n_neighbors=n_neighbors, n_pcs=n_comps, transformer="sklearn", method="gauss", random_state=seed)
    return ref, _ingest_class()(ref)


def map_query(ingest, query: ad.AnnData, genes: list[str], label_key: str, *, n_neighbors: int) -> ad.AnnData:
    """The query projected onto the reference PCs and labelled by its ``n_neighbors`` reference neighbours."""
    qry = ad.AnnData(X=dense(query[:, genes].X), obs=pd.DataFrame(index=query.obs_names), var=pd.DataFrame(index=genes))
    ingest.fit(qry)
    ingest.map_embedding("pca")
    ingest.neighbors(k=n_neighbors)
    ingest.map_labels(label_key, "knn")
    return ingest.to_adata()


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
    n_comps: int | None = None,
    n_neighbors: int = 15,
) -> MethodResult:
    """Map reference labels onto the query with scanpy's ingest.

    Parameters
    ----------
    reference, query
        Preprocessed AnnDatas (log-normalised ``X``).
    genes
        Highly variable genes (PCA input).
    label_key, continuous_keys
        Reference obs columns to transfer.
    batch_key, ontology_key
        Unused (ingest has no batch model; CL ids follow the labels).
    seed
        Seeds the PCA (the neighbour search is exact).
    n_comps
        Principal components (``sc.pp.pca``; ``n_pcs`` of the graph); None: scanpy's default 50.
    n_neighbors
        Neighbours of the reference graph and of each query cell (scanpy's default 15).
    """
    import scanpy as sc

    # sc.pp.pca's own rule when n_comps is None: N_PCS (50), or min(genes, cells) - 1 where that is smaller
    n_comps = min(sc.settings.N_PCS if n_comps is None else n_comps, len(genes) - 1, reference.n_obs - 1)
    if n_comps < 1 or not 1 <= n_neighbors < reference.n_obs:
        raise InputError(f"config: methods: ingest needs n_comps >= 1 and 1 <= n_neighbors < {reference.n_obs}")
    keys, genes = list(continuous_keys), list(genes)
    timings: dict[str, float] = {}
    with timed(timings, "train_s"):
        ref, ingest = reference_ingest(reference, genes, label_key, n_comps=n_comps, n_neighbors=n_neighbors, seed=seed)
    with timed(timings, "query_s"):
        mapped = map_query(ingest, query, genes, label_key, n_neighbors=n_neighbors)
        # fates: means over the k reference neighbours ingest voted with; score: the winning vote share
        neighbours = np.asarray(ingest._indices)
        fates = neighbour_fates(reference.obs, keys, neighbours) if keys else {}
        labels = mapped.obs[label_key].astype(str).to_numpy()
        score = vote_share(reference.obs[label_key].astype(str).to_numpy(), neighbours, labels)
        predictions = pd.DataFrame({"prediction": labels, "score": score, **fates})
    return MethodResult(
        predictions=predictions,
        reference_embedding=np.asarray(ref.obsm["X_pca"], dtype=np.float32),
        query_embedding=np.asarray(mapped.obsm["X_pca"], dtype=np.float32),
        timings=timings,
        mapping=neighbour_mapping(neighbours, reference.n_obs),
    )
