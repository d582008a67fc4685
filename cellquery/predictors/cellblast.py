"""Cell BLAST: DIRECTi models, posterior distances, empirical P-values, hit-based predictions.

The ``cell-blast`` package (Cao et al., Nat. Commun. 2020) does the modelling
and the search; this module feeds it raw counts and turns its hits into the
project's predictions, following the paper's Methods:

1. *DIRECTi* (Methods, "Model structure"): an adversarial autoencoder on the
   raw counts of the HVGs (negative-binomial likelihood), with *adversarial
   batch alignment* on the group's batch key (``batch_key``; none: no
   alignment). ``n_models`` models (the paper's default 4) are trained from
   different starting points, seeded from the run seed.
2. *Cell querying* (Methods, "Cell querying using posterior distance"):
   Euclidean nearest neighbours in each model's latent space give the initial
   hits (``n_neighbors`` per model, pooled); each hit gets the posterior
   *normalised projection distance* (NPD, Eq. in "Posterior distance
   estimation", from ``n_posterior`` posterior samples) and an *empirical
   P-value* against the NPD of ``n_empirical`` random reference pairs.
3. *Multi-model consensus*: per hit, distances are averaged and P-values
   combined by their geometric mean across models (the package's defaults,
   ``Hits.reconcile_models(dist_method="mean", pval_method="gmean")``); a hit is
   *significant* when its P-value is at most ``p_cutoff`` (0.05, ``Hits.filter``).
4. *Hit-based predictions* (Methods, same name): fewer than ``min_hits`` (2)
   significant hits -> ``rejected``; the majority label must hold more than
   ``min_fraction`` (50 %) of them, else ``ambiguous``
   (:func:`cellquery.transfer.rules.decide`); continuous annotations (fates)
   are the arithmetic mean over the significant hits.
   The cell's ``p_value`` is the ``min_hits``-th smallest reconciled P-value
   of its hits (1 with fewer hits): the cell is not rejected at cut-off t
   exactly when it is at most t; its ``score`` is 1 - ``p_value``.
5. *BLAST2CO* (Methods, "BLAST2CO"), when the group has Cell Ontology ids
   (``ontology_key``): the package's ``Hits.blast2co`` on a CL graph built from
   :mod:`cellquery.ontology`, giving the ``pred_cl`` column.

Defaults. With no params the wrapper runs the package's documented defaults
(cell-blast 0.5.1; file:line in the installed package):

* ``fit_DIRECTi`` (directi.py:730-751): ``latent_dim`` 10, ``h_dim`` 128,
  ``depth`` 1, ``prob_module`` "NB", ``rmbatch_module`` "Adversarial",
  ``learning_rate`` 1e-3, ``batch_size`` 128, ``val_split`` 0.1, at most
  ``epoch`` 1000 epochs with early stopping after ``patience`` 30 epochs without
  a better validation loss (``DIRECTi.fit``, directi.py:195-231; the best model
  is restored). Adversarial batch alignment (rmbatch.py:112-114):
  ``lambda_reg`` 0.01, ``n_steps`` 1, ``delay`` 20 epochs; early stopping only
  counts after the delay (directi.py:216).
* ``BLAST`` (blast.py:456-458): ``distance_metric`` "npd_v1",
  ``n_posterior`` 50, ``n_empirical`` 10000; ``BLAST.query`` (blast.py:797):
  ``n_neighbors`` 5 per model; ``n_jobs`` ``config.N_JOBS`` = 1 (config.py:10).
* ``Hits.filter`` (blast.py:1143, 1137): a hit is significant when its
  reconciled P-value is ``<= cutoff`` 0.05; ``Hits.annotate`` (blast.py:1203-1204):
  ``min_hits`` 2, ``majority_threshold`` 0.5 (not inclusive); ``Hits.blast2co``
  (blast.py:1282-1284): ``min_hits`` 2, ``thresh`` 0.5, ``min_path`` 4.
* ``n_models`` 4: the package has no ensemble size (``BLAST`` takes a list of
  models); 4 models is how the Cell BLAST paper runs it.

Package defects worked around (cell-blast 0.5.1 with numpy 2 / scipy 1.17):

* ``Hits`` stores per-cell hits as ``np.asarray(list, dtype=object)``. When
  every query cell has the same number of hits (always with one model, by
  chance with several) that array becomes rectangular and each cell's
  distances and P-values are *object* arrays, on which
  ``Hits.reconcile_models`` (``scipy.stats.gmean``) and ``Hits.filter`` (numba)
  fail. Steps 3-4 are therefore done here on typed, flattened arrays
  (:func:`reconcile_hits`), with the same definitions as the package.
* ``np.int`` (removed in numpy 1.24) is used by ``Cell_BLAST.metrics``,
  ``Cell_BLAST.weighting`` and ``Cell_BLAST.utils.minibatch``. None of them is
  on the path used here (fit_DIRECTi, BLAST, BLAST.query, Hits.blast2co), so
  numpy is not patched; ``tests/test_predictors_cellblast.py`` runs this path
  under numpy 2, where ``np.int`` does not exist.

Device: the package picks a GPU through NVML at import, even where torch
cannot use it (the CPU build of torch on a GPU machine); :func:`use_device`
sets it from the job's request instead (CUDA when the job asked for a GPU, config
``gpu``, and stops it if torch sees none: :func:`cellquery.device.torch_accelerator`). On CPU, torch runs
with ``torch_threads`` intra-op threads (default 1): the DIRECTi networks are
small, and on shared CPUs more threads made training about ten times slower
(spin-waiting threads).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.peer_tools import limited_torch_threads, raw_counts
from cellquery.predictors import MethodResult, fate_columns, timed
from cellquery.progress import Progress
from cellquery.transfer import sweep_column

SWEEPS = True  # P-value cut-off: predictions at several cut-offs come from one query
REQUIRES: tuple[str, ...] = ("counts",)


def use_device(cb) -> None:
    """Train and infer on CUDA when the job asked for a GPU, else on CPU."""
    import torch

    from cellquery.device import torch_accelerator

    device = torch.device("cuda" if torch_accelerator() == "gpu" else "cpu")
    cb.config.DEVICE = device
    cb.directi.DEVICE = device  # directi keeps its own copy, taken at import


def model_seeds(seed: int, n_models: int) -> list[int]:
    """Deterministic, distinct starting points for the ensemble, derived from the run seed."""
    return [int(s) % (2**31 - 1) for s in np.random.SeedSequence(seed).generate_state(n_models)]


def counts_adata(adata: ad.AnnData, keys: Sequence[str], source: str) -> ad.AnnData:
    """An AnnData with the raw counts of all genes in ``X`` (Cell BLAST's input) and obs ``keys``."""
    x = raw_counts(adata, source, "cellblast")
    obs = pd.DataFrame({k: adata.obs[k].to_numpy() for k in keys}, index=adata.obs_names.astype(str))
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=adata.var_names.astype(str)))


def reconcile_hits(hits, dist, pval, n_models: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flatten Cell BLAST hits and combine them across models.

    Parameters
    ----------
    hits, dist, pval
        Per query cell: hit indices (n_hits,), distances and empirical
        P-values (n_hits, n_models), as in ``Cell_BLAST.blast.Hits``; object
        arrays of either shape (ragged or rectangular) are accepted.
    n_models
        Number of models.

    Returns
    -------
    cell, hit, distance, p_value
        Flat arrays over all (query cell, hit) pairs: the query cell's row,
        the reference cell's row, the mean distance over models and the
        geometric mean of the P-values over models (the package's
        ``reconcile_models`` defaults).
    """
    from scipy.stats import gmean

    hit_list = [np.asarray(h, dtype=np.int64).ravel() for h in hits]
    lengths = np.fromiter((len(h) for h in hit_list), dtype=np.int64, count=len(hit_list))
    if not lengths.sum():
        empty = np.zeros(0)
        return np.zeros(0, np.int64), np.zeros(0, np.int64), empty, empty
    flat_dist = np.concatenate([np.asarray(d, dtype=np.float64).reshape(-1, n_models) for d in dist])
    flat_pval = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, n_models) for p in pval])
    with np.errstate(divide="ignore"):  # a P-value of 0 in one model makes the geometric mean 0
        combined = gmean(flat_pval, axis=1)
    return np.repeat(np.arange(len(hit_list)), lengths), np.concatenate(hit_list), flat_dist.mean(axis=1), combined


def hit_predictions(
    cell: np.ndarray,
    hit: np.ndarray,
    significant: np.ndarray,
    n_query: int,
    reference_labels: np.ndarray,
    reference_values: np.ndarray | None,
    *,
    min_hits: int,
    min_fraction: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Cell BLAST's hit-based predictions from flat (cell, hit) pairs.

    Returns predictions, significant-hit counts, the top label's share and,
    when ``reference_values`` is given, the mean of the significant hits'
    values (NaN for cells with fewer than ``min_hits`` hits).
    """
    from cellquery.transfer.acceptance import decide

    labels, codes = np.unique(np.asarray(reference_labels, dtype=str), return_inverse=True)
    c, h = cell[significant], hit[significant]
    n_hits = np.bincount(c, minlength=n_query)
    votes = np.zeros((n_query, len(labels)))
    np.add.at(votes, (c, codes[h]), 1.0)
    pred, share = decide(votes, n_hits, labels, min_hits=min_hits, min_fraction=min_fraction)
    means = None
    if reference_values is not None:
        sums = np.zeros((n_query, reference_values.shape[1]))
        np.add.at(sums, c, reference_values[h])
        means = sums / np.maximum(n_hits, 1)[:, None]
        means[n_hits < min_hits] = np.nan
    return pred, n_hits, share, means


def cell_p_values(cell: np.ndarray, p_value: np.ndarray, n_query: int, min_hits: int) -> np.ndarray:
    """Per query cell the ``min_hits``-th smallest P-value of its hits (1 with fewer hits, 0 when ``min_hits`` is 0).

    With significance ``P <= cutoff`` (``Hits.filter``), a cell has
    ``min_hits`` significant hits, and so escapes rejection, exactly when this
    value is at most the cut-off. ``cell`` and ``p_value`` are the flat pairs of
    :func:`reconcile_hits`.
    """
    if min_hits <= 0:
        return np.zeros(n_query)
    out = np.ones(n_query)
    order = np.lexsort((p_value, cell))
    c, p = cell[order], p_value[order]
    counts = np.bincount(c, minlength=n_query)
    start = np.searchsorted(c, np.arange(n_query))
    enough = counts >= min_hits
    out[enough] = p[start[enough] + min_hits - 1]
    return out


def cell_type_dag(terms: Sequence[str], vertex_attribute: str):
    """A ``Cell_BLAST.utils.CellTypeDAG`` of ``terms`` and all their ancestors.

    Built from the project's Cell Ontology (:func:`cellquery.ontology.load_cell_ontology`),
    whose links mix is_a and part_of (the package's OBO loader keeps is_a
    only). Edges point from a term to its direct parents, as in the package;
    every vertex carries its id under ``vertex_attribute`` (what ``blast2co``
    retrieves). Terms unknown to the ontology are left out (``blast2co`` then
    ignores hits carrying them).
    """
    import igraph
    from Cell_BLAST.utils import CellTypeDAG

    from cellquery.ontology import load_cell_ontology

    ontology = load_cell_ontology()
    known = [t for t in dict.fromkeys(map(str, terms)) if t in ontology]
    closure = sorted(set(known).union(*(ontology.ancestors(t) for t in known)))
    graph = igraph.Graph(directed=True)
    graph.add_vertices(closure)
    graph.vs[vertex_attribute] = closure
    position = {t: i for i, t in enumerate(closure)}
    graph.add_edges([(position[t], position[p]) for t in closure for p in sorted(ontology.parents(t))])
    return CellTypeDAG(graph, {t: t for t in closure})


def blast2co(blast, query_names, cell, hit, p_value, significant, ontology_key: str, *, min_hits: int, threshold: float, min_path: int):
    """Cell Ontology predictions with the package's ``Hits.blast2co`` on the significant, reconciled hits."""
    from Cell_BLAST.blast import Hits

    n_query = len(query_names)
    c = cell[significant]
    bounds = np.searchsorted(c, np.arange(n_query + 1))  # cells are sorted in the flat arrays
    hit_s, p_s = hit[significant], p_value[significant]
    per_hits = [hit_s[bounds[i] : bounds[i + 1]] for i in range(n_query)]
    per_p = [p_s[bounds[i] : bounds[i + 1]] for i in range(n_query)]
    stub = ad.AnnData(obs=pd.DataFrame(index=pd.Index(query_names, dtype=str)))
    hits = Hits(blast, per_hits, per_p, per_p, stub)  # distances are unused by blast2co
    dag = cell_type_dag(blast.ref.obs[ontology_key].astype(str).unique(), ontology_key)
    table = hits.blast2co(dag, cl_field=ontology_key, min_hits=min_hits, thresh=threshold, min_path=min_path)
    return table[ontology_key].astype(str).to_numpy()


def check_params(
    *, n_models: int, epochs: int, latent_dim: int, n_neighbors: int, n_posterior: int, n_empirical: int,
    p_cutoff: float, sweep: Sequence[float],
) -> None:
    """Raise :class:`InputError` naming the parameter(s) out of range."""
    if n_models < 1 or epochs < 1 or latent_dim < 1 or n_neighbors < 1 or n_posterior < 2 or n_empirical < 1:
        raise InputError("config: methods: cellblast: n_models, epochs, latent_dim, n_neighbors, n_empirical must be >= 1 and n_posterior >= 2")
    if not all(0 < t <= 1 for t in [p_cutoff, *sweep]):
        raise InputError(f"config: methods: cellblast p_cutoff and sweep must be in (0, 1], got {[p_cutoff, *sweep]}")


def blast_inputs(
    reference: ad.AnnData, query: ad.AnnData, obs_keys: Sequence[str | None], batch_key: str | None
) -> tuple[ad.AnnData, ad.AnnData, list[str] | None]:
    """Cell BLAST's reference (with the obs columns ``obs_keys``, None skipped) and query, and the batch effect to align.

    Batch alignment needs at least two batches in the reference; otherwise none.
    """
    ref = counts_adata(reference, list(dict.fromkeys(k for k in obs_keys if k)), "reference")
    qry = counts_adata(query, [], "query")
    batch_effect = [batch_key] if batch_key and ref.obs[batch_key].nunique() > 1 else None
    return ref, qry, batch_effect


def train_models(cb, ref: ad.AnnData, genes: list[str], batch_effect, seeds: Sequence[int], workdir: str, **directi) -> list:
    """One DIRECTi model per seed (step 1), saved under ``workdir``; ``directi``: ``fit_DIRECTi`` options."""
    models = []
    # models done, elapsed, ETA in the job's log (each model's epochs: DIRECTi's own lines)
    counter = Progress("Cell BLAST DIRECTi training", len(seeds), "models", every_s=0)
    for i, model_seed in enumerate(seeds):
        # DIRECTi reports every epoch on stdout; keep it in the job's log (stderr)
        with contextlib.redirect_stdout(sys.stderr):
            models.append(
                cb.directi.fit_DIRECTi(
                    ref, genes=genes, batch_effect=batch_effect, random_seed=model_seed,
                    path=os.path.join(workdir, f"model{i}"), **directi,
                )
            )
        counter.update()
    return models


def annotate(
    blast, result, query_names, label_key: str, keys: Sequence[str], ontology_key: str | None, *, p_cutoff: float,
    sweep: Sequence[float], min_hits: int, min_fraction: float, blast2co_threshold: float, blast2co_min_path: int,
) -> pd.DataFrame:
    """Steps 3-5: the query's predictions from its BLAST hits ``result``.

    Columns ``prediction``, ``n_hits``, ``top_fraction``, ``pred_<key>`` of
    the continuous ``keys``, ``p_value`` and ``score`` (:func:`cell_p_values`),
    one ``sweep_<cut-off>`` per ``sweep`` cut-off and,
    with an ontology key, ``pred_cl`` (BLAST2CO).
    """
    n_query = len(query_names)
    cell, hit, _, p_value = reconcile_hits(result.hits, result.dist, result.pval, len(blast.models))
    significant = p_value <= p_cutoff  # the package's Hits.filter keeps P <= cutoff
    labels = blast.ref.obs[label_key].astype(str).to_numpy()
    values = blast.ref.obs[list(keys)].to_numpy(float) if keys else None
    rule = dict(min_hits=min_hits, min_fraction=min_fraction)
    pred, n_hits, share, means = hit_predictions(cell, hit, significant, n_query, labels, values, **rule)
    predictions = pd.DataFrame({"prediction": pred, "n_hits": n_hits, "top_fraction": share, **fate_columns(keys, means)})
    predictions["p_value"] = cell_p_values(cell, p_value, n_query, min_hits)
    predictions["score"] = 1.0 - predictions["p_value"]
    for t in sweep:
        predictions[sweep_column(t)] = hit_predictions(cell, hit, p_value <= t, n_query, labels, None, **rule)[0]
    if ontology_key:
        predictions["pred_cl"] = blast2co(
            blast, query_names, cell, hit, p_value, significant, ontology_key,
            min_hits=min_hits, threshold=blast2co_threshold, min_path=blast2co_min_path,
        )
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
    n_models: int = 4,
    epochs: int = 1000, patience: int = 30,
    latent_dim: int = 10, h_dim: int = 128, batch_size: int = 128, learning_rate: float = 1e-3,
    lambda_reg: float = 0.01, adversarial_delay: int = 20,
    n_neighbors: int = 5, n_posterior: int = 50, n_empirical: int = 10000,
    p_cutoff: float = 0.05, min_hits: int = 2, min_fraction: float = 0.5,
    blast2co_threshold: float = 0.5, blast2co_min_path: int = 4,
    n_jobs: int = 1,
    torch_threads: int = 1,
    sweep: Sequence[float] = (),
) -> MethodResult:
    """Train a DIRECTi ensemble on the reference and BLAST the query against it.

    Parameters
    ----------
    reference, query, genes
        Preprocessed AnnDatas with raw counts in ``layers["counts"]``; the
        models are fitted on ``genes`` (the group's HVGs).
    label_key, batch_key, continuous_keys, ontology_key
        The group's reference obs columns (``batch_key`` None: no batch alignment).
    seed
        Run seed; the models' seeds and the posterior sampling derive from it.
    n_models, epochs, patience
        Models in the ensemble (paper: 4), maximum epochs and early-stopping patience of each (1000, 30).
    latent_dim, h_dim, batch_size, learning_rate
        DIRECTi architecture and optimiser (package defaults 10, 128, 128, 1e-3).
    lambda_reg, adversarial_delay
        Adversarial batch alignment strength (the paper's lambda_b), epochs before it starts (defaults 0.01, 20).
    n_neighbors, n_posterior, n_empirical
        Initial Euclidean hits per model, posterior samples per cell for NPD,
        random reference pairs of the empirical null distribution (5, 50, 10000).
    p_cutoff, min_hits, min_fraction
        Significance cut-off of the empirical P-value and the prediction rule (0.05, 2, 0.5).
    blast2co_threshold, blast2co_min_path
        BLAST2CO confidence threshold and minimal longest path to the root.
    n_jobs, torch_threads
        joblib jobs of the BLAST search; torch intra-op threads while the method runs.
    sweep
        Further P-value cut-offs, each giving a ``sweep_<cut-off>`` column (the paper's Supp. Fig. 9c).

    Returns
    -------
    MethodResult with the columns of :func:`annotate`, the first model's latent space as the
    embedding and timings ``train_s``, ``index_s``, ``query_s``, ``annotate_s``.
    """
    check_params(n_models=n_models, epochs=epochs, latent_dim=latent_dim, n_neighbors=n_neighbors,
                 n_posterior=n_posterior, n_empirical=n_empirical, p_cutoff=p_cutoff, sweep=sweep)
    keys = list(continuous_keys)
    ref, qry, batch_effect = blast_inputs(reference, query, [label_key, *keys, batch_key, ontology_key], batch_key)
    directi = dict(latent_dim=latent_dim, h_dim=h_dim, batch_size=batch_size, learning_rate=learning_rate, epoch=epochs,
                   patience=patience, rmbatch_module_kwargs={"lambda_reg": lambda_reg, "delay": adversarial_delay})
    rule = dict(p_cutoff=p_cutoff, sweep=sweep, min_hits=min_hits, min_fraction=min_fraction,
                blast2co_threshold=blast2co_threshold, blast2co_min_path=blast2co_min_path)

    import Cell_BLAST as cb  # heavy: imported only when the method runs

    use_device(cb)
    timings: dict[str, float] = {}
    with limited_torch_threads(torch_threads), tempfile.TemporaryDirectory(prefix="cellblast-") as workdir:
        with timed(timings, "train_s"):
            models = train_models(cb, ref, list(genes), batch_effect, model_seeds(seed, n_models), workdir, **directi)
        with timed(timings, "index_s"):
            blast = cb.blast.BLAST(models, ref, n_posterior=n_posterior, n_empirical=n_empirical, n_jobs=n_jobs, random_seed=seed)
        with timed(timings, "query_s"):
            result = blast.query(qry, n_neighbors=n_neighbors, n_jobs=n_jobs, random_seed=seed)
            query_latent = np.asarray(models[0].inference(qry), dtype=np.float32)
        with timed(timings, "annotate_s"):
            predictions = annotate(blast, result, qry.obs_names, label_key, keys, ontology_key, **rule)
        reference_latent = np.asarray(blast.latent[:, 0, :], dtype=np.float32)
    return MethodResult(predictions, reference_latent, query_latent, timings)
