"""Controls of query-based cell typing: four predictors that bound what a method can score.

Open Problems' label projection task scores every method beside control
methods that need no model of the data; three of these follow it, a fourth is
the negative-type control of the Cell BLAST paper (Cao et al. 2020), whose MBA
rewards ``rejected`` for query types absent from the reference:

- ``random_labels``: each query cell gets a label drawn (``numpy``
  ``default_rng(seed)``) from the reference's label frequencies; never
  rejected (Open Problems' ``random_labels``).
- ``majority_label``: the most frequent reference label for every cell (ties
  to the first label in sorted order; Open Problems' ``majority_vote``).
- ``true_labels``: the query's own label where the reference has that type,
  ``rejected`` where it does not: the ceiling, MBA exactly 1 on positive and
  negative types (Open Problems' ``true_labels``, with the rejection that
  negative types call for).
- ``reject_all``: every cell ``rejected``: MBA 1 on negative types, 0 on
  positive types.

Scores (``score``, the confidence that a cell belongs to a reference type):
``true_labels`` 1 for cells of reference types and 0 for the others (the
ceiling: AUROC 1, AURC 0); ``reject_all`` 0 and ``majority_label`` 1 for every
cell (constant: AUROC 0.5, the floor); ``random_labels`` uniform on [0, 1]
from its own random stream (``default_rng([seed, 1])``; AUROC about 0.5).

Continuous annotations (``pred_<key>``): the query's true values for
``true_labels`` (NaN for rejected cells); the mean over the reference cells of
the predicted label for ``random_labels`` and ``majority_label``; NaN for
``reject_all``. No control has an embedding. Controls read only obs, so they
run on counts and log-normalised groups alike (``REQUIRES = ()``).

Each control is a :class:`Control` object registered in
:data:`cellquery.predictors.PREDICTORS` as ``cellquery.predictors.controls:<name>``;
:data:`CONTROLS` lists their names so that figures can mark them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from cellquery.io import require_obs
from cellquery.predictors import MethodResult, fate_columns, timed
from cellquery.transfer import REJECTED

if TYPE_CHECKING:
    import anndata as ad

CONTROLS = ("random_labels", "majority_label", "true_labels", "reject_all")

# (reference labels, query AnnData, label key, seed) -> one prediction per query cell
Labeller = Callable[[np.ndarray, "ad.AnnData", str, int], np.ndarray]
# (reference obs, query AnnData, label key, continuous keys, predictions) -> cells x keys
Fates = Callable[[pd.DataFrame, "ad.AnnData", str, list, np.ndarray], np.ndarray]
# (predictions, seed) -> one score per query cell
Scores = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class Control:
    """A control predictor: how it labels the query, fills ``pred_<key>`` and scores its cells.

    Has the predictor plug-in interface of :mod:`cellquery.predictors`
    (``REQUIRES`` and :meth:`predict`).
    """

    name: str
    labels: Labeller
    fates: Fates
    scores: Scores
    REQUIRES: ClassVar[tuple[str, ...]] = ()

    def predict(
        self,
        reference: ad.AnnData,
        query: ad.AnnData,
        genes: Sequence[str],
        *,
        label_key: str,
        batch_key: str | None = None,
        continuous_keys: Sequence[str] = (),
        ontology_key: str | None = None,
        seed: int = 0,
    ) -> MethodResult:
        """Predict the query's labels (and continuous annotations) as the control does.

        ``genes``, ``batch_key`` and ``ontology_key`` are unused (CL ids
        follow the labels); ``seed`` matters only to ``random_labels``.
        """
        keys = list(continuous_keys)
        reference_labels = reference.obs[label_key].astype(str).to_numpy()
        timings: dict[str, float] = {}
        with timed(timings, "query_s"):
            prediction = np.asarray(self.labels(reference_labels, query, label_key, seed), dtype=object)
            fates = fate_columns(keys, self.fates(reference.obs, query, label_key, keys, prediction)) if keys else {}
            score = np.asarray(self.scores(prediction, seed), dtype=float)
        return MethodResult(predictions=pd.DataFrame({"prediction": prediction, "score": score, **fates}), timings=timings)


def most_frequent(labels: np.ndarray) -> str:
    """The most frequent label (ties to the first in sorted order)."""
    types, counts = np.unique(labels, return_counts=True)  # sorted types: argmax takes the first of a tie
    return str(types[np.argmax(counts)])


def _random(reference_labels: np.ndarray, query: ad.AnnData, label_key: str, seed: int) -> np.ndarray:
    """Labels drawn independently from the reference's label frequencies (Open Problems' ``random_labels``)."""
    types, counts = np.unique(reference_labels, return_counts=True)
    return np.random.default_rng(seed).choice(types, size=query.n_obs, p=counts / counts.sum())


def _majority(reference_labels: np.ndarray, query: ad.AnnData, label_key: str, seed: int) -> np.ndarray:
    """The reference's most frequent label for every cell (Open Problems' ``majority_vote``)."""
    return np.full(query.n_obs, most_frequent(reference_labels), dtype=object)


def _truth(reference_labels: np.ndarray, query: ad.AnnData, label_key: str, seed: int) -> np.ndarray:
    """The query's own label for positive types, ``rejected`` for negative ones (absent from the reference)."""
    require_obs(query, [label_key], "query")
    truth = query.obs[label_key].astype(str).to_numpy()
    return np.where(np.isin(truth, reference_labels), truth, REJECTED)


def _reject(reference_labels: np.ndarray, query: ad.AnnData, label_key: str, seed: int) -> np.ndarray:
    """``rejected`` for every cell."""
    return np.full(query.n_obs, REJECTED, dtype=object)


def label_means(reference_obs: pd.DataFrame, query: ad.AnnData, label_key: str, keys: list, prediction: np.ndarray) -> np.ndarray:
    """Each cell's mean of ``keys`` over the reference cells of its predicted label (NaN for ``rejected``)."""
    means = reference_obs[keys].astype(float).groupby(reference_obs[label_key].astype(str).to_numpy()).mean()
    return means.reindex(prediction).to_numpy(float)


def true_values(reference_obs: pd.DataFrame, query: ad.AnnData, label_key: str, keys: list, prediction: np.ndarray) -> np.ndarray:
    """The query's own values of ``keys`` (NaN for rejected cells)."""
    require_obs(query, keys, "query")
    fates = query.obs[keys].to_numpy(float, copy=True)
    fates[prediction == REJECTED] = np.nan
    return fates


def accepted(prediction: np.ndarray, seed: int) -> np.ndarray:
    """1 for every cell given a label, 0 for rejected cells (``true_labels``: the ceiling)."""
    return (prediction != REJECTED).astype(float)


def constant(value: float) -> Scores:
    """The same score for every cell (a floor: it separates nothing)."""
    return lambda prediction, seed: np.full(len(prediction), float(value))


def uniform(prediction: np.ndarray, seed: int) -> np.ndarray:
    """Independent uniform scores on [0, 1], a random stream of their own (``default_rng([seed, 1])``)."""
    return np.random.default_rng([seed, 1]).random(len(prediction))


random_labels = Control("random_labels", _random, label_means, uniform)
majority_label = Control("majority_label", _majority, label_means, constant(1.0))
true_labels = Control("true_labels", _truth, true_values, accepted)
reject_all = Control("reject_all", _reject, label_means, constant(0.0))  # no reference label predicted: every fate NaN
