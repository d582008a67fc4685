"""scVI latent space, trained on the reference; the query is mapped by scArches surgery.

scVI (Lopez et al. 2018, scvi-tools) is a variational autoencoder of raw
counts (zero-inflated negative binomial likelihood, the default); its latent
mean is the embedding.

* Reference: ``SCVI`` on the raw counts (``layers["counts"]``) of the HVGs,
  with the reference's ``batch_key`` column as batch covariate when given
  (the embedding interface has no batch argument: set ``batch_key`` in the
  method's params).
* Query: ``SCVI.load_query_data`` + ``train`` (scArches surgery: the query's
  new batch categories get new weights, everything else stays frozen).
  Without a batch key there is nothing to fit and the query is encoded directly.

Defaults (scvi-tools 1.4.2; file:line under ``scvi/``). With no params the
model and its training are the package's: ``n_hidden`` 128, ``n_latent`` 10,
``n_layers`` 1, ``dropout_rate`` 0.1, ZINB likelihood (model/_scvi.py:118-123),
``batch_size`` 128, no early stopping (model/base/_training_mixin.py:56-57),
Adam at lr 1e-3 with KL warm-up over 400 epochs (train/_trainingplans.py:149-156).
``max_epochs`` and ``query_epochs`` None are passed to ``train`` as None, so
scvi-tools picks the epochs itself (model/base/_training_mixin.py:122-124,
``get_max_epochs_heuristic``, model/_utils.py:37-60): ``min(round(20000 / n_obs
* 400), 400)`` epochs, at least 1, i.e. 400 up to 20,000 cells, fewer above;
for the query surgery ``n_obs`` is the query's.

Two settings are the project's rule, not the tool's default, both from the
scvi-tools scArches (reference mapping) tutorial:

* the reference-mapping architecture ``encode_covariates=True``,
  ``deeply_inject_covariates=False``, layer norm instead of batch norm
  (constructor defaults: False, True, batch norm, module/_vae.py:161-165);
  without encoded covariates the encoder never sees the batch, and surgery
  could not change where the query's cells land in the latent space;
* ``weight_decay=0`` in the query surgery (default 1e-6,
  train/_trainingplans.py:153), so that weight decay does not move the frozen
  reference weights and the reference's latent space stays exactly as trained.

Training runs on the GPU when the job asked for one (config ``gpu``;
:func:`cellquery.device.torch_accelerator`, which stops a job that asked but sees
no CUDA device) and on the CPU otherwise, with ``torch_threads`` intra-op threads on CPU (default 1: the networks are small and
more threads were slower on shared CPUs). ``scvi.settings.seed`` is set from
the run seed, so a run is reproducible on the same hardware.

``fit_cells`` (the project's option, default all cells in memory) trains the
reference model on that many reference cells drawn with the seed (every batch
kept, :func:`fit_subsample`) and encodes every cell. Files written by the
chunked preprocess (:mod:`cellquery.backed`) go through :func:`embed_backed`:
the model is trained on ``fit_cells`` rows (default
:data:`cellquery.backed.FIT_CELLS`, as the chunked PCA) read by row from disk, the
query surgery likewise on the query's, and both sides are encoded chunk by chunk,
so no step holds an atlas's counts. (scvi-tools reads a model's training data
from an in-memory AnnData; a backed one is read whole, layers included.)

:func:`reference_model` and :func:`map_query` are shared with the scANVI
predictor (:mod:`cellquery.predictors.scanvi`).
"""

from __future__ import annotations

import logging
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from cellquery.device import torch_accelerator
from cellquery.errors import InputError
from cellquery.peer_tools import limited_torch_threads, raw_counts
from cellquery.progress import lightning_callback

REQUIRES: tuple[str, ...] = ("counts",)


def counts_adata(adata: ad.AnnData, genes: Sequence[str], obs: dict[str, np.ndarray], source: str) -> ad.AnnData:
    """Raw counts of ``genes`` (CSR float32) with the given obs columns: scvi-tools' input."""
    x = raw_counts(adata, source, "scVI", genes)
    frame = pd.DataFrame({k: pd.Categorical(np.asarray(v).astype(str)) for k, v in obs.items()}, index=adata.obs_names.astype(str))
    return ad.AnnData(X=x, obs=frame, var=pd.DataFrame(index=list(genes)))


def batch_column(adata: ad.AnnData, batch_key: str | None, source: str) -> dict[str, np.ndarray]:
    """``{"batch": values}`` of the batch key (empty without one)."""
    if batch_key is None:
        return {}
    if batch_key not in adata.obs:
        raise InputError(f"{source}: obs column {batch_key!r} (scVI batch_key) is missing")
    return {"batch": adata.obs[batch_key].astype(str).to_numpy()}


def check_epochs(**epochs: int | None) -> None:
    """Raise :class:`InputError` unless each epoch count is None (scvi-tools' heuristic) or >= 1."""
    bad = [name for name, n in epochs.items() if n is not None and n < 1]
    if bad:
        raise InputError(f"config: methods: {', '.join(bad)} must be >= 1 or left unset (scvi-tools' default)")


def train_kwargs(max_epochs: int | None, batch_size: int, task: str = "scvi-tools training") -> dict:
    """Common ``train`` arguments: the job's device, no progress bar, progress lines in the job's log.

    ``max_epochs`` None is passed on as None: scvi-tools' own epoch heuristic
    (``get_max_epochs_heuristic``). ``accelerator`` is ``"gpu"`` (one device) when
    the job asked for a GPU, else ``"cpu"``; ``early_stopping=False`` is ``train``'s
    default, spelled out. ``task`` names the training in the progress lines
    (epochs done, elapsed, ETA; :func:`cellquery.progress.lightning_callback`).
    """
    accelerator = torch_accelerator()
    callback = lightning_callback(task)
    return dict(
        max_epochs=None if max_epochs is None else int(max_epochs),
        batch_size=int(batch_size),
        accelerator=accelerator,
        devices=1 if accelerator == "gpu" else "auto",
        enable_progress_bar=False,
        early_stopping=False,
        callbacks=[] if callback is None else [callback],
    )


def reference_model(
    reference: ad.AnnData,
    genes: Sequence[str],
    *,
    batch_key: str | None,
    labels: np.ndarray | None = None,
    seed: int,
    n_latent: int,
    n_layers: int,
    n_hidden: int,
    max_epochs: int | None,
    batch_size: int,
):
    """Train an ``SCVI`` model on the reference counts (labels registered when given, for scANVI)."""
    import scvi

    check_epochs(max_epochs=max_epochs)
    if n_latent < 1 or n_layers < 1 or n_hidden < 1 or batch_size < 2:
        raise InputError("config: methods: scvi: n_latent, n_layers, n_hidden must be >= 1, batch_size >= 2")
    obs = batch_column(reference, batch_key, "reference")
    if labels is not None:
        obs["label"] = labels
    adata = counts_adata(reference, genes, obs, "reference")
    scvi.settings.seed = int(seed)
    scvi.settings.dl_num_workers = 0
    scvi.model.SCVI.setup_anndata(
        adata, batch_key="batch" if batch_key else None, labels_key="label" if labels is not None else None
    )
    model = scvi.model.SCVI(
        adata,
        n_latent=n_latent,
        n_layers=n_layers,
        n_hidden=n_hidden,
        # the project's rule: scvi-tools' scArches architecture, not the constructor defaults (module docstring)
        encode_covariates=True,
        deeply_inject_covariates=False,
        use_layer_norm="both",
        use_batch_norm="none",
    )
    model.train(**train_kwargs(max_epochs, batch_size, "scVI reference training"))
    return model, adata


def query_adata(query: ad.AnnData, genes: Sequence[str], *, batch_key: str | None, labels: str | None = None) -> ad.AnnData:
    """The query's counts with the reference model's obs columns (labels set to ``labels`` when given)."""
    obs = batch_column(query, batch_key, "query")
    if labels is not None:
        obs["label"] = np.full(query.n_obs, labels)
    return counts_adata(query, genes, obs, "query")


def map_query(
    model_class, model, query: ad.AnnData, genes: Sequence[str], *, batch_key: str | None, labels: str | None = None,
    query_epochs: int | None, batch_size: int, seed: int,
):
    """scArches surgery of ``model`` on the query's counts (:func:`query_adata`); returns (query model, query AnnData).

    With a batch key, the query's new batch categories get new weights, fitted
    for ``query_epochs`` (None: scvi-tools' heuristic on the query's cells).
    Without a batch covariate the query has no new parameters to fit, and
    ``model`` itself encodes it (its setup is transferred to the query's
    AnnData). Pass the AnnData to the returned model's
    ``get_latent_representation``/``predict``.
    """
    import scvi

    adata = query_adata(query, genes, batch_key=batch_key, labels=labels)
    if batch_key is None:
        return model, adata
    if query_epochs is not None and query_epochs < 1:
        raise InputError("config: methods: query_epochs must be >= 1 or left unset when a batch key is given (scArches surgery)")
    scvi.settings.seed = int(seed)
    query_model = model_class.load_query_data(adata, model)
    # weight_decay 0: the project's rule (scArches tutorial), not train's default 1e-6; see the module docstring
    query_model.train(**train_kwargs(query_epochs, batch_size, "scVI query surgery"), plan_kwargs={"weight_decay": 0.0})
    return query_model, adata


def fit_subsample(obs: pd.DataFrame, fit_cells: int | None, seed: int, batch_key: str | None) -> np.ndarray:
    """Sorted rows a model is trained on: :func:`cellquery.backed.fit_rows`, plus cells of each batch it missed.

    A batch with no cell among the drawn rows would have no trained weights in
    the model (scArches' encoded covariates) yet be encoded with them; it gets
    ``min(its cells, max(1, fit_cells // n_batches))`` of its cells, drawn with the seed.
    """
    from cellquery.backed import fit_rows

    rows = fit_rows(len(obs), fit_cells, seed)
    if batch_key is None or len(rows) == len(obs):
        return rows
    if batch_key not in obs:
        raise InputError(f"obs column {batch_key!r} (scVI batch_key) is missing")
    batches = obs[batch_key].astype(str).to_numpy()
    names = np.unique(batches)
    missing = np.setdiff1d(names, np.unique(batches[rows]))
    per_batch = max(1, int(fit_cells) // len(names))
    rng = np.random.default_rng([seed, 1])
    extra = [rng.choice(np.flatnonzero(batches == b), size=min(per_batch, int((batches == b).sum())), replace=False)
             for b in missing]
    return np.sort(np.concatenate([rows, *extra])) if extra else rows


def embed(
    reference: ad.AnnData,
    query: ad.AnnData,
    genes: Sequence[str],
    *,
    seed: int = 0,
    batch_key: str | None = None,
    n_latent: int = 10,
    n_layers: int = 1,
    n_hidden: int = 128,
    max_epochs: int | None = None,
    query_epochs: int | None = None,
    batch_size: int = 128,
    torch_threads: int = 1,
    fit_cells: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """scVI latent means of the reference and of the query (mapped by scArches surgery).

    Parameters
    ----------
    reference, query
        Preprocessed AnnDatas with raw counts in ``layers["counts"]``.
    genes
        HVGs the model is fitted on.
    seed
        ``scvi.settings.seed``.
    batch_key
        Reference (and query) obs column used as the batch covariate; None: none.
    n_latent, n_layers, n_hidden
        Architecture (scvi-tools defaults 10, 1, 128).
    max_epochs, query_epochs, batch_size
        Training epochs of the reference model and of the query surgery (None:
        scvi-tools' heuristic, 400 up to 20,000 cells), minibatch size (128).
    torch_threads
        Torch intra-op threads on CPU while the method runs (restored afterwards).
    fit_cells
        Train the reference model on this many reference cells and the query
        surgery on this many query cells (:func:`fit_subsample`); None: all.
    """
    import scvi  # heavy: imported only when the method runs

    check_fit_cells(fit_cells)
    fit = fit_subsample(reference.obs, fit_cells, seed, batch_key)
    with limited_torch_threads(torch_threads):
        model, _ = reference_model(
            reference if len(fit) == reference.n_obs else reference[fit], genes, batch_key=batch_key, seed=seed,
            n_latent=n_latent, n_layers=n_layers, n_hidden=n_hidden, max_epochs=max_epochs, batch_size=batch_size,
        )
        ref_emb = model.get_latent_representation(
            None if len(fit) == reference.n_obs else query_adata(reference, genes, batch_key=batch_key))
        # the surgery is trained on the query's cells drawn the same way (all of them when fewer)
        query_fit = fit_subsample(query.obs, fit_cells, seed, batch_key)
        whole = len(query_fit) == query.n_obs
        query_model, qry = map_query(
            scvi.model.SCVI, model, query if whole else query[query_fit], genes, batch_key=batch_key,
            query_epochs=query_epochs, batch_size=batch_size, seed=seed,
        )
        qry_emb = query_model.get_latent_representation(qry if whole else query_adata(query, genes, batch_key=batch_key))
    return np.asarray(ref_emb, dtype=np.float32), np.asarray(qry_emb, dtype=np.float32)


def check_fit_cells(fit_cells: int | None) -> None:
    if fit_cells is not None and (isinstance(fit_cells, bool) or int(fit_cells) != fit_cells or fit_cells < 2):
        raise InputError(f"config: methods: scvi: fit_cells must be an integer >= 2 or left unset, got {fit_cells!r}")


def _encode(model, path, obs: pd.DataFrame, genes: Sequence[str], batch_key: str | None, n_latent: int,
            chunk_cells: int) -> np.ndarray:
    """Latent means of every cell of a chunked file: its counts read ``chunk_cells`` rows at a time.

    Each chunk becomes the AnnData :func:`query_adata` would build (counts of
    ``genes`` as float32 CSR, the batch column), from the file's counts layer
    and ``obs`` (the file's, read once).
    """
    from cellquery.backed import gene_columns, map_chunks

    columns = gene_columns(path, genes, "scVI")
    batches = None if batch_key is None else obs[batch_key].astype(str).to_numpy()
    names = obs.index.astype(str)

    def encode(start, block):
        stop = start + block.shape[0]
        frame = pd.DataFrame({} if batches is None else {"batch": pd.Categorical(batches[start:stop])}, index=names[start:stop])
        part = ad.AnnData(X=block[:, columns].astype(np.float32).tocsr(), obs=frame, var=pd.DataFrame(index=list(genes)))
        return model.get_latent_representation(part)

    logger = logging.getLogger("scvi")
    level = logger.level
    logger.setLevel(logging.WARNING)  # scvi-tools logs its setup transfer once per chunk
    try:
        return map_chunks(path, "counts", encode, n_latent, chunk_cells)
    finally:
        logger.setLevel(level)


def embed_backed(
    reference_path,
    query_path,
    genes: Sequence[str],
    *,
    seed: int = 0,
    fit_cells: int | None = None,
    chunk_cells: int | None = None,
    batch_key: str | None = None,
    n_latent: int = 10,
    n_layers: int = 1,
    n_hidden: int = 128,
    max_epochs: int | None = None,
    query_epochs: int | None = None,
    batch_size: int = 128,
    torch_threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`embed` on files written by the chunked preprocess, without reading them whole.

    The reference model is trained on the counts of :func:`fit_subsample`'s rows
    (``fit_cells``, default :data:`cellquery.backed.FIT_CELLS`) read by row; with a
    batch key, the query surgery is trained on the query's rows drawn the same way;
    then every reference and query cell is encoded ``chunk_cells`` rows at a time
    (default :data:`cellquery.backed.CHUNK_CELLS`). With ``fit_cells`` at least the
    reference's size the embeddings are :func:`embed`'s (same seed, same cells).
    """
    import scvi

    from cellquery.backed import CHUNK_CELLS, FIT_CELLS, read_backed, read_rows

    fit_cells = FIT_CELLS if fit_cells is None else fit_cells
    check_fit_cells(fit_cells)
    chunk_cells = CHUNK_CELLS if chunk_cells is None else int(chunk_cells)
    if chunk_cells < 1:
        raise InputError(f"config: methods: scvi: chunk_cells must be >= 1, got {chunk_cells}")
    obs = {}
    for side, path in (("reference", reference_path), ("query", query_path)):
        backed = read_backed(path)
        obs[side] = backed.obs
        backed.close()
        if batch_key is not None and batch_key not in obs[side]:
            raise InputError(f"{path}: obs column {batch_key!r} (scVI batch_key) is missing")
    with limited_torch_threads(torch_threads):
        reference = read_rows(reference_path, fit_subsample(obs["reference"], fit_cells, seed, batch_key), genes=genes)
        model, _ = reference_model(
            reference, genes, batch_key=batch_key, seed=seed, n_latent=n_latent, n_layers=n_layers,
            n_hidden=n_hidden, max_epochs=max_epochs, batch_size=batch_size,
        )
        del reference
        ref_emb = _encode(model, reference_path, obs["reference"], genes, batch_key, n_latent, chunk_cells)
        query_model = model
        if batch_key is not None:
            query = read_rows(query_path, fit_subsample(obs["query"], fit_cells, seed, batch_key), genes=genes)
            query_model, _ = map_query(scvi.model.SCVI, model, query, genes, batch_key=batch_key,
                                       query_epochs=query_epochs, batch_size=batch_size, seed=seed)
            del query
        qry_emb = _encode(query_model, query_path, obs["query"], genes, batch_key, n_latent, chunk_cells)
    return ref_emb, qry_emb
