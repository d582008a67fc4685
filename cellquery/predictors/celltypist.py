"""CellTypist: a logistic-regression classifier trained on the reference, with majority voting.

CellTypist (Domínguez Conde et al., Science 2022; ``celltypist`` on PyPI)
trains one-vs-rest logistic regressions on log-normalised expression and
predicts every query cell; its majority voting then relabels each cluster of
an over-clustering of the query with the cluster's most frequent prediction.
Here the model is trained on the reference (a custom model, nothing is
downloaded) and applied to the query as the package documents it:

1. ``celltypist.train(X, labels, genes)`` on the reference's HVGs (the
   project's feature set, as for every peer);
2. ``celltypist.annotate(query, model, mode="prob match", p_thres,
   majority_voting=True)``: in "prob match" mode a cell is assigned every type
   whose probability (the sigmoid of its decision score) exceeds ``p_thres``,
   none (``Unassigned``) when no type does, several (``A|B``) when more than
   one does (models.py:155-161); majority voting over-clusters the query
   (scanpy PCA, k-NN graph and Leiden, resolution by query size,
   classifier.py:392-461) and gives each cluster its most frequent per-cell label
   (classifier.py:465-492).

Input values: CellTypist expects log1p of expression normalised to 10,000
counts per cell over all genes (its check, train.py:331 and
classifier.py:326). A counts group gives exactly that from
``layers["counts"]``; a log-normalised group (log1p of expression scaled per
cell by any factor) is brought to it by ``expm1``, rescaling each cell to
10,000 and ``log1p``. The model is trained on the HVG columns of that
matrix, so the package's whole-row check is skipped for training
(``check_expression=False``: a row restricted to the HVGs does not sum to
10,000); the query is annotated with all its genes, as CellTypist asks.
``REQUIRES`` is empty: every group has log-normalised values.

Defaults (celltypist 1.7.1; file:line in the installed package):

* ``train`` (train.py:190-205, 352-372): ``C`` 1.0, ``solver`` "lbfgs"
  (``sag`` above 50,000 cells), ``max_iter`` 1000 below 50,000 cells (500
  below 500,000, else 200), ``with_mean`` True (genes standardised by the
  reference's mean and SD, values above 10 clipped), no SGD, no feature selection;
* ``annotate`` (annotate.py:9-19): ``p_thres`` 0.5 (this module passes
  ``mode="prob match"`` and ``majority_voting=True``, the documented way to get
  ``Unassigned`` cells and cluster-level labels); ``min_prop`` 0 (no
  ``Heterogeneous`` clusters); no majority voting on 50 cells or fewer
  (annotate.py:88-90), where each cell keeps its own label; over-clustering
  (classifier.py:392-461): 2,500 HVGs of the query, 50 PCs, 10 neighbours,
  Leiden (igraph, 2 iterations) at resolution 5 below 5,000 cells, 10 below
  20,000, 15 below 40,000, ...

Rejection and score: a cell whose majority-voting label is ``Unassigned`` is
``rejected``; a multi-label ``A|B`` (or ``Heterogeneous``) is ``ambiguous``.
``score`` is the cell's largest class probability (CellTypist's
``conf_score``, ``AnnotationResult.to_adata``): a cell is ``Unassigned``
before voting exactly when its score is at most ``p_thres``.
Extra columns: ``cell_label``, the cell's own CellTypist label before voting
(a type, ``A|B`` or ``Unassigned``), and ``over_clustering``, its cluster
of the over-clustering (where majority voting ran).

Continuous fates: CellTypist predicts none; ``pred_<key>`` is the mean over
the reference cells of the predicted label (NaN for rejected and ambiguous
cells), as for the controls (:func:`cellquery.predictors.controls.label_means`).
No embedding.

Compatibility: celltypist 1.7.1 (its latest release) builds
``LogisticRegression(multi_class="ovr")``, a parameter scikit-learn removed
in 1.7 (the pinned scikit-learn is 1.9). Where it is gone, ``train`` runs
with :class:`OneVsRestLogisticRegression`: one binary logistic regression per
class through scikit-learn's ``OneVsRestClassifier`` (scikit-learn's stated
replacement), stored as the stacked ``coef_``/``intercept_`` of the former
one-vs-rest model, so CellTypist's prediction code (``decision_function``,
feature subsetting through ``coef_``) runs unchanged.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from cellquery.errors import InputError
from cellquery.neighbors import SCANPY_DENSE_BELOW
from cellquery.predictors import MethodResult, fate_columns, timed

REQUIRES: tuple[str, ...] = ()
TARGET_SUM = 10_000  # CellTypist's input: log1p of counts per 10,000
UNASSIGNED = "Unassigned"  # CellTypist's label for a cell with no type above p_thres (models.py:161)


def runtime_missing() -> str | None:
    """Why CellTypist cannot run here (its package is not installed), or None."""
    if importlib.util.find_spec("celltypist") is None:
        return "needs the celltypist package (pip install celltypist, pinned in pyproject.toml), which is not installed"
    return None


class OneVsRestLogisticRegression(LogisticRegression):
    """``LogisticRegression(multi_class="ovr")`` as scikit-learn < 1.7 fitted it: one binary model per class.

    Fitted through :class:`sklearn.multiclass.OneVsRestClassifier`; the binary
    models' coefficients are stacked into ``coef_`` (classes x genes) and
    ``intercept_``, so ``decision_function`` is the per-class decision score
    and CellTypist's ``expit`` of it the per-class probability.
    """

    def fit(self, X, y, sample_weight=None):
        from sklearn.multiclass import OneVsRestClassifier

        ovr = OneVsRestClassifier(LogisticRegression(**self.get_params())).fit(X, y)
        self.classes_ = ovr.classes_
        self.coef_ = np.vstack([e.coef_ for e in ovr.estimators_])
        self.intercept_ = np.concatenate([e.intercept_ for e in ovr.estimators_])
        self.n_iter_ = np.concatenate([np.atleast_1d(e.n_iter_) for e in ovr.estimators_])
        self.n_features_in_ = np.shape(X)[1]
        return self


def _ovr_logistic_regression(*, multi_class: str = "ovr", **params) -> LogisticRegression:
    """What ``celltypist.train`` builds with ``LogisticRegression(multi_class="ovr", ...)``."""
    if multi_class != "ovr":
        raise ValueError(f"only multi_class='ovr' is supported, got {multi_class!r}")
    return OneVsRestLogisticRegression(**params)


@contextlib.contextmanager
def sklearn_compat():
    """Run ``celltypist.train`` with :class:`OneVsRestLogisticRegression` where scikit-learn lacks ``multi_class``."""
    import importlib
    from unittest import mock

    # the module, not the function ``celltypist.train`` that the package's __init__ exports under its name
    train_module = importlib.import_module("celltypist.train")
    if "multi_class" in inspect.signature(LogisticRegression).parameters:
        yield
        return
    with mock.patch.object(train_module, "LogisticRegression", _ovr_logistic_regression):
        yield


def log1p_cp10k(adata: ad.AnnData) -> sp.csr_matrix:
    """log1p of expression normalised to 10,000 per cell over all genes (module docstring: input values)."""
    import scanpy as sc

    if "counts" in adata.layers:
        x = adata.layers["counts"]
    else:
        x = adata.X.expm1() if sp.issparse(adata.X) else np.expm1(np.asarray(adata.X))
    scaled = ad.AnnData(X=sp.csr_matrix(x, dtype=np.float32))
    sc.pp.normalize_total(scaled, target_sum=TARGET_SUM)
    sc.pp.log1p(scaled)
    return scaled.X


def train_model(reference: ad.AnnData, genes: Sequence[str], labels: np.ndarray, **train_params):
    """Step 1: a CellTypist model trained on the reference's log1p-CP10k values of ``genes``."""
    import celltypist

    x = log1p_cp10k(reference)[:, reference.var_names.get_indexer(list(genes))]
    with sklearn_compat():
        return celltypist.train(x, labels=np.asarray(labels, dtype=str), genes=np.asarray(genes), check_expression=False, **train_params)


def annotate(model, query: ad.AnnData, *, p_thres: float, majority_voting: bool):
    """Step 2: CellTypist's prob-match annotation of the query (all genes), with its majority voting."""
    import celltypist

    qry = ad.AnnData(X=log1p_cp10k(query), obs=pd.DataFrame(index=query.obs_names.astype(str)), var=pd.DataFrame(index=query.var_names))
    if majority_voting and qry.n_obs >= SCANPY_DENSE_BELOW:
        # CellTypist would build this graph with sc.pp.neighbors, which stops at this size (cellquery.neighbors);
        # given the graph, it runs its over-clustering and voting on it unchanged
        over_clustering_graph(qry)
    return celltypist.annotate(qry, model=model, mode="prob match", p_thres=p_thres, majority_voting=majority_voting)


def over_clustering_graph(qry: ad.AnnData) -> None:
    """The neighbourhood graph CellTypist builds for its over-clustering, written into ``qry``.

    CellTypist 1.7's own recipe (``Classifier._construct_neighbor_graph``, CPU path):
    genes in at least 5 cells, 2,500 highly variable genes, scaled (max 10), 50
    principal components, 10 neighbours; only the k-NN call goes through
    :func:`cellquery.neighbors.neighbors`.
    """
    import scanpy as sc

    from cellquery.neighbors import neighbors

    adata = qry.copy()
    sc.pp.filter_genes(adata, min_cells=5)
    sc.pp.highly_variable_genes(adata, n_top_genes=min(2500, adata.n_vars))
    adata = adata[:, adata.var.highly_variable].copy()
    sc.pp.scale(adata, max_value=10)
    sc.pp.pca(adata, n_comps=min(50, adata.n_vars - 1))
    neighbors(adata, n_neighbors=10, n_pcs=adata.obsm["X_pca"].shape[1])
    qry.obsm["X_pca"], qry.uns["neighbors"] = adata.obsm["X_pca"], adata.uns["neighbors"]
    qry.obsp["connectivities"], qry.obsp["distances"] = adata.obsp["connectivities"], adata.obsp["distances"]


def restore_unassigned(labels, reference_labels) -> np.ndarray:
    """CellTypist's labels with ``Unassigned`` written out in full.

    celltypist 1.7.1 writes ``Unassigned`` into a numpy string array sized by
    the longest label it predicted (models.py:160-161), so where every
    predicted label is shorter, ``Unassigned`` is cut (``"U"``, ``"Unassig"``),
    and majority voting then votes on the cut label. A label that is no
    reference label, holds no ``|`` and starts ``Unassigned`` is read as ``Unassigned``.
    """
    known = set(np.asarray(reference_labels, dtype=str))
    labels = np.asarray(labels, dtype=object).astype(str)
    cut = [lab not in known and "|" not in lab and lab != "" and UNASSIGNED.startswith(lab) for lab in labels]
    return np.where(cut, UNASSIGNED, labels).astype(object)


def to_predictions(labels, reference_labels) -> np.ndarray:
    """CellTypist labels in the project's vocabulary: ``Unassigned`` -> rejected, not a reference label -> ambiguous."""
    from cellquery.transfer import AMBIGUOUS, REJECTED

    labels = restore_unassigned(labels, reference_labels)
    known = set(np.asarray(reference_labels, dtype=str))
    return np.array([lab if lab in known else REJECTED if lab == UNASSIGNED else AMBIGUOUS for lab in labels], dtype=object)


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
    p_thres: float = 0.5,
    majority_voting: bool = True,
    C: float = 1.0,
    max_iter: int | None = None,
) -> MethodResult:
    """Train a CellTypist model on the reference and annotate the query with it.

    Parameters
    ----------
    reference, query
        Preprocessed AnnDatas (counts in ``layers["counts"]`` or log-normalised ``X``).
    genes
        HVGs the model is trained on.
    label_key, continuous_keys
        Reference obs columns to transfer.
    batch_key, ontology_key
        Unused (CellTypist has no batch model; CL ids follow the labels).
    seed
        Unused: lbfgs training is deterministic and CellTypist seeds its
        over-clustering itself (scanpy's ``random_state`` 0).
    p_thres
        Probability threshold of "prob match" (CellTypist's default 0.5).
    majority_voting
        Refine labels by majority voting over an over-clustering of the query (default True).
    C, max_iter
        Inverse regularisation strength (CellTypist's default 1.0) and
        iterations (None: CellTypist's rule by cell count) of the logistic regression.
    """
    if not 0 < p_thres < 1:
        raise InputError(f"config: methods: celltypist p_thres must be in (0, 1), got {p_thres}")
    if C <= 0 or (max_iter is not None and max_iter < 1):
        raise InputError(f"config: methods: celltypist needs C > 0 and max_iter >= 1 (or null), got C={C}, max_iter={max_iter}")
    from cellquery.predictors.controls import label_means

    keys, genes = list(continuous_keys), list(genes)
    reference_labels = reference.obs[label_key].astype(str).to_numpy()
    timings: dict[str, float] = {}
    with timed(timings, "train_s"):
        model = train_model(reference, genes, reference_labels, C=C, max_iter=max_iter)
    with timed(timings, "query_s"):
        result = annotate(model, query, p_thres=p_thres, majority_voting=majority_voting)
    labels = result.predicted_labels
    voted = labels.get("majority_voting", labels["predicted_labels"]).astype(str).to_numpy()
    prediction = to_predictions(voted, reference_labels)
    predictions = pd.DataFrame({
        "prediction": prediction,
        "score": result.probability_matrix.max(axis=1).to_numpy(float),
        "cell_label": restore_unassigned(labels["predicted_labels"].astype(str).to_numpy(), reference_labels),
    })
    if "over_clustering" in labels:
        predictions["over_clustering"] = labels["over_clustering"].astype(str).to_numpy()
    if keys:
        fates = label_means(reference.obs, query, label_key, keys, prediction)
        for column, values in fate_columns(keys, fates).items():
            predictions[column] = values
    return MethodResult(predictions=predictions, timings=timings)
