"""SingleR: correlation to reference profiles, fine-tuning and pruning (R/Bioconductor, through ``Rscript``).

SingleR (Aran et al., Nat. Immunol. 2019) scores each query cell against each
reference label by the Spearman correlation of its expression with the
label's reference cells over marker genes (the 80th percentile of the
correlations, ``quantile`` 0.8), then *fine-tunes*: it repeats the scoring
over the markers of the top-scoring labels only, dropping labels more than
``tune.thresh`` below the best, until one is left. ``pruneScores`` then
removes low-quality assignments: per label, cells whose *delta* (their score
for the label minus the median of their scores across labels) is more than
3 MADs below that label's median delta get ``pruned.labels`` NA.

Run as ``cellquery/predictors/r/singler.R`` by ``Rscript`` (no shell; files:
:mod:`cellquery.predictors.rscript`) on the log-normalised values of the
project's HVGs (``X``) of reference and query, with the reference labels.

Defaults (SingleR 2.0.0 as Debian's r-bioc-singler ships it; arguments of
``SingleR()``, ``trainSingleR()`` and ``pruneScores()``): ``genes`` "de" with
``de.method`` "classic" (top genes by log-fold change between label medians,
``de.n`` = 500 * (2/3)^log2(number of labels)), ``quantile`` 0.8, ``fine.tune``
TRUE, ``tune.thresh`` 0.05, ``prune`` TRUE with ``nmads`` 3 and
``min.diff.med`` -Inf, ``assay.type`` "logcounts" (log-normalised values),
one thread (``BPPARAM`` SerialParam). Nothing is left to the project.

Rejection: ``pruned.labels`` NA -> ``rejected`` (SingleR's own rule). Score:
``delta.median``, the cell's delta from the median (``getDeltaFromMedian``),
the quantity ``pruneScores`` thresholds; ``delta_next`` (the fine-tuning
gap between the best and next-best label) is kept as an extra column, and
``top_label`` the label before pruning.

Continuous fates: SingleR predicts none; ``pred_<key>`` is the mean over the
reference cells of the predicted label (NaN for rejected cells), as for the
controls (:func:`cellquery.predictors.controls.label_means`). No embedding.

Runtime: R with SingleR (Debian ``r-bioc-singler``); where either is missing
the method is skipped with that reason (:func:`runtime_missing`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from cellquery.predictors import MethodResult, fate_columns, rscript, timed

REQUIRES: tuple[str, ...] = ()
R_PACKAGES = ("Matrix", "SingleR")
DEBIAN_PACKAGES = "r-bioc-singler"
SCRIPT = "singler.R"


def runtime_missing() -> str | None:
    """Why SingleR cannot run here (no ``Rscript`` or no SingleR package), or None."""
    return rscript.missing_r_packages(R_PACKAGES, DEBIAN_PACKAGES)


def run_singler(workdir: Path, reference_x, query_x, labels: np.ndarray, *, seed: int) -> pd.DataFrame:
    """Write the exchange files, run the R script; its table (labels, pruned, delta.next, delta.median)."""
    rscript.write_inputs(workdir, reference_x, query_x, labels)
    rscript.run_script(SCRIPT, workdir, [seed])
    table = pd.read_csv(workdir / "predictions.csv", dtype={"labels": str}, keep_default_na=False, na_values=[])
    table["pruned"] = table["pruned"].astype(str).str.upper().map({"TRUE": True, "FALSE": False})
    if table["pruned"].isna().any():
        raise RuntimeError(f"{SCRIPT}: column pruned holds values other than TRUE/FALSE")
    return table


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
) -> MethodResult:
    """Annotate the query with SingleR, the reference as its labelled reference.

    Parameters
    ----------
    reference, query
        Preprocessed AnnDatas (log-normalised ``X``).
    genes
        HVGs (the genes SingleR selects its markers from).
    label_key, continuous_keys
        Reference obs columns to transfer.
    batch_key, ontology_key
        Unused (SingleR has no batch model; CL ids follow the labels).
    seed
        R's ``set.seed`` before the run (SingleR's defaults are deterministic).
    """
    from cellquery.predictors.controls import label_means
    from cellquery.transfer import REJECTED

    keys, genes = list(continuous_keys), list(genes)
    labels = reference.obs[label_key].astype(str).to_numpy()
    timings: dict[str, float] = {}
    with rscript.workdir() as tmp, timed(timings, "transfer_s"):
        table = run_singler(Path(tmp), reference[:, genes].X, query[:, genes].X, labels, seed=seed)
    if len(table) != query.n_obs:
        raise RuntimeError(f"{SCRIPT}: {len(table)} predictions for {query.n_obs} query cells")
    top = table["labels"].to_numpy(dtype=object)
    prediction = np.where(table["pruned"].to_numpy(bool), REJECTED, top)
    predictions = pd.DataFrame({
        "prediction": prediction,
        "score": table["delta.median"].to_numpy(float),
        "delta_next": table["delta.next"].to_numpy(float),
        "top_label": top,
    })
    if keys:
        for column, values in fate_columns(keys, label_means(reference.obs, query, label_key, keys, prediction)).items():
            predictions[column] = values
    return MethodResult(predictions=predictions, timings=timings)
