"""Synthetic cell embeddings at atlas scale, generated in chunks.

The model imitates a low-dimensional embedding (PCA / latent space) of an atlas:

* World (``seed`` and the shape parameters only): ``n_types`` cell types grouped in
  ``n_lineages`` lineages. Lineage centres ``m_l ~ N(0, LINEAGE_SD^2 I_d)``; type centres
  ``c_t = m_l + N(0, SUBTYPE_SD^2 I_d)``, so types of one lineage overlap like subtypes
  of real cell types. Each type varies along ``latent_dim`` random orthonormal axes
  ``U_t`` (low intrinsic dimension) with its own scales ``s_ti = exp(N(log AXIS_SD,
  AXIS_LOG_SD^2))`` (anisotropic), plus isotropic noise ``N(0, NOISE_SD^2 I_d)``.
* Abundances: Zipf, ``p_t ∝ rank_t^-zipf_a`` over a random ranking of the types seen in
  the reference; with the defaults (200 types, a = 1.1) about a quarter of the types
  hold < 0.1 % of the cells each. ``n_unseen`` types get no reference cells at all
  and appear only among the queries (the cells a query method should reject).
* Trajectories: ``n_trajectories`` continuous paths, each a quadratic Bezier curve between
  the centres of two types with a random control point; a trajectory cell sits at
  ``u ~ U(0, 1)`` on the curve with the same kind of low-rank + isotropic noise. They
  hold ``trajectory_fraction`` of the cells; label ``n_types + j`` for path j.
* Queries: the seen types with a flatter, reshuffled Zipf law (``query_zipf_a``), the
  unseen types together ``query_unseen_fraction``, trajectories as in the reference.

A cell is ``x = c_t + U_t diag(s_t) z + e``, ``z ~ N(0, I_r)``, ``e ~ N(0, NOISE_SD^2 I_d)``.

The spreads are set so that types overlap as real ones do: with 32 dimensions, exact
50-NN majority vote labels about 88 % of the seen-type queries correctly against
2 x 10^5 reference cells and about 95 % against 10^6 (far-apart clusters would let
every index score 100 % and hide the differences between them).

Rows are generated in fixed blocks of :data:`BLOCK` rows; block b of a stream is drawn
from ``numpy.random.default_rng([seed, stream, b])``, so row i is the same whatever the
chunk size, the number of rows asked for, or what was generated before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from cellquery.errors import InputError
from cellquery.index.base import check_int

BLOCK = 65536  # rows per independently seeded block
LINEAGE_SD = 2.5
SUBTYPE_SD = 0.3
AXIS_SD = 1.0
AXIS_LOG_SD = 0.4
NOISE_SD = 0.3
TRAJECTORY_BEND_SD = 1.5

_REFERENCE, _QUERY, _WORLD = 1, 2, 0


@dataclass(frozen=True)
class World:
    """Everything shared by reference and query cells (see module docstring).

    Labels ``0..n_types-1`` are cell types, ``n_types..n_types+n_trajectories-1`` the
    trajectories.
    """

    dim: int
    seed: int
    n_types: int
    n_trajectories: int
    centres: np.ndarray  # (n_types, dim)
    loadings: np.ndarray  # (n_labels, latent_dim, dim): rows s_ti * U_t[:, i]
    traj_ends: np.ndarray  # (n_trajectories, 3, dim): start, control, end
    unseen: np.ndarray  # type ids without reference cells
    reference_p: np.ndarray  # (n_labels,) label probabilities of reference cells
    query_p: np.ndarray  # (n_labels,) label probabilities of query cells
    params: dict = field(default_factory=dict)

    @property
    def n_labels(self) -> int:
        return self.n_types + self.n_trajectories


def _zipf(n: int, a: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf weights ``rank^-a`` (normalised) over a random ranking of ``n`` items."""
    ranks = rng.permutation(n) + 1.0
    w = ranks**-a
    return w / w.sum()


def _check_world(sizes: dict[str, tuple[int, int]], fractions: dict[str, float]) -> None:
    """Raise :class:`InputError` for a size below its minimum or a fraction outside [0, 1)."""
    for name, (v, lo) in sizes.items():
        check_int(v, f"synthetic: {name}", lo)
    if sizes["n_unseen"][0] >= sizes["n_types"][0]:
        raise InputError(f"synthetic: n_unseen={sizes['n_unseen'][0]} must be < n_types={sizes['n_types'][0]}")
    if sizes["latent_dim"][0] > sizes["dim"][0]:
        raise InputError(f"synthetic: latent_dim={sizes['latent_dim'][0]} exceeds dim={sizes['dim'][0]}")
    for name, v in fractions.items():
        if not 0 <= v < 1:
            raise InputError(f"synthetic: {name} must be in [0, 1), got {v!r}")


def _type_geometry(rng, dim: int, n_types: int, n_lineages: int, n_labels: int, latent_dim: int):
    """Type centres (lineage centre + subtype offset) and every label's scaled latent axes."""
    lineage = rng.normal(0.0, LINEAGE_SD, size=(n_lineages, dim))
    of_type = rng.integers(0, n_lineages, size=n_types)
    centres = lineage[of_type] + rng.normal(0.0, SUBTYPE_SD, size=(n_types, dim))
    loadings = np.empty((n_labels, latent_dim, dim))
    for t in range(n_labels):
        axes, _ = np.linalg.qr(rng.standard_normal((dim, latent_dim)))
        scale = np.exp(rng.normal(np.log(AXIS_SD), AXIS_LOG_SD, size=latent_dim))
        if t >= n_types:
            scale *= 0.5  # cells along a path vary less across it
        loadings[t] = scale[:, None] * axes.T
    return centres, loadings


def _trajectory_ends(rng, centres: np.ndarray, seen: np.ndarray, n_trajectories: int) -> np.ndarray:
    """Start, control point and end of each path; paths run between two seen types."""
    dim = centres.shape[1]
    ends = np.empty((n_trajectories, 3, dim))
    for j in range(n_trajectories):
        a, b = rng.choice(seen, size=2, replace=False)
        ends[j, 0], ends[j, 2] = centres[a], centres[b]
        ends[j, 1] = 0.5 * (centres[a] + centres[b]) + rng.normal(0.0, TRAJECTORY_BEND_SD, size=dim)
    return ends


def _abundances(rng, n_types: int, n_trajectories: int, seen: np.ndarray, unseen: np.ndarray, zipf_a: float,
                query_zipf_a: float, trajectory_fraction: float, query_unseen_fraction: float):
    """Label probabilities of reference and query cells (unnormalised)."""
    n_labels = n_types + n_trajectories
    ref_p = np.zeros(n_labels)
    ref_p[seen] = (1.0 - trajectory_fraction) * _zipf(len(seen), zipf_a, rng)
    q_p = np.zeros(n_labels)
    q_p[seen] = (1.0 - trajectory_fraction - query_unseen_fraction) * _zipf(len(seen), query_zipf_a, rng)
    if len(unseen):
        q_p[unseen] = query_unseen_fraction * _zipf(len(unseen), query_zipf_a, rng)
    if n_trajectories:
        ref_p[n_types:] = trajectory_fraction / n_trajectories
        q_p[n_types:] = trajectory_fraction / n_trajectories
    return ref_p, q_p


def make_world(
    dim: int = 32,
    seed: int = 0,
    n_types: int = 200,
    n_lineages: int = 20,
    n_unseen: int = 10,
    n_trajectories: int = 5,
    latent_dim: int = 6,
    zipf_a: float = 1.1,
    query_zipf_a: float = 0.6,
    trajectory_fraction: float = 0.05,
    query_unseen_fraction: float = 0.1,
) -> World:
    """Draw the shared world of cell types (deterministic in ``seed`` and the arguments).

    Raises
    ------
    InputError
        Non-positive sizes, ``n_unseen >= n_types``, ``latent_dim > dim``, fractions
        outside [0, 1).
    """
    _check_world(
        dict(dim=(dim, 1), n_types=(n_types, 1), n_lineages=(n_lineages, 1), n_unseen=(n_unseen, 0),
             n_trajectories=(n_trajectories, 0), latent_dim=(latent_dim, 1)),
        dict(trajectory_fraction=trajectory_fraction, query_unseen_fraction=query_unseen_fraction),
    )
    if n_unseen == 0 and query_unseen_fraction > 0:
        query_unseen_fraction = 0.0
    if n_trajectories == 0:
        trajectory_fraction = 0.0
    params = dict(
        dim=dim, seed=seed, n_types=n_types, n_lineages=n_lineages, n_unseen=n_unseen,
        n_trajectories=n_trajectories, latent_dim=latent_dim, zipf_a=zipf_a,
        query_zipf_a=query_zipf_a, trajectory_fraction=trajectory_fraction,
        query_unseen_fraction=query_unseen_fraction,
    )
    rng = np.random.default_rng([int(seed), _WORLD])  # one stream, drawn in this order:
    centres, loadings = _type_geometry(rng, dim, n_types, n_lineages, n_types + n_trajectories, latent_dim)
    perm = rng.permutation(n_types)
    seen, unseen = np.sort(perm[: n_types - n_unseen]), np.sort(perm[n_types - n_unseen :])
    ends = _trajectory_ends(rng, centres, seen, n_trajectories)
    ref_p, q_p = _abundances(rng, n_types, n_trajectories, seen, unseen, zipf_a, query_zipf_a,
                             trajectory_fraction, query_unseen_fraction)
    return World(
        dim=int(dim), seed=int(seed), n_types=int(n_types), n_trajectories=int(n_trajectories),
        centres=centres.astype(np.float32), loadings=loadings.astype(np.float32),
        traj_ends=ends.astype(np.float32), unseen=unseen.astype(np.int64),
        reference_p=ref_p / ref_p.sum(), query_p=q_p / q_p.sum(), params=params,
    )


def _block(world: World, stream: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``b * BLOCK .. (b + 1) * BLOCK - 1`` of a stream: (X float32, labels int32)."""
    rng = np.random.default_rng([world.seed, stream, int(b)])
    p = world.reference_p if stream == _REFERENCE else world.query_p
    r = world.loadings.shape[1]
    # Fixed order of draws: labels, latent factors, noise, path positions.
    labels = rng.choice(world.n_labels, size=BLOCK, p=p).astype(np.int32)
    z = rng.standard_normal((BLOCK, r), dtype=np.float32)
    X = rng.standard_normal((BLOCK, world.dim), dtype=np.float32)
    u = rng.random(BLOCK, dtype=np.float32)
    X *= np.float32(NOISE_SD)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(world.n_labels + 1))
    for lab in range(world.n_labels):
        rows = order[bounds[lab] : bounds[lab + 1]]
        if rows.size == 0:
            continue
        part = z[rows] @ world.loadings[lab]
        if lab < world.n_types:
            part += world.centres[lab]
        else:  # quadratic Bezier B(u) = (1-u)^2 P0 + 2u(1-u) P1 + u^2 P2
            P = world.traj_ends[lab - world.n_types]
            uu = u[rows, None]
            part += (1 - uu) ** 2 * P[0] + 2 * uu * (1 - uu) * P[1] + uu**2 * P[2]
        X[rows] += part
    return X, labels


def _rows(world: World, stream: int, start: int, stop: int, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``start..stop-1`` of a stream, assembled from blocks (last block cached)."""
    Xs, Ls = [], []
    for b in range(start // BLOCK, (stop - 1) // BLOCK + 1):
        if cache.get("b") != b:
            cache["b"], cache["data"] = b, _block(world, stream, b)
        X, L = cache["data"]
        lo, hi = max(start, b * BLOCK) - b * BLOCK, min(stop, (b + 1) * BLOCK) - b * BLOCK
        Xs.append(X[lo:hi])
        Ls.append(L[lo:hi])
    if len(Xs) == 1:
        return np.array(Xs[0]), np.array(Ls[0])
    return np.concatenate(Xs), np.concatenate(Ls)


def _check_n(name: str, v) -> int:
    return check_int(v, f"synthetic: {name}")


def iter_reference_chunks(
    n: int, dim: int = 32, seed: int = 0, chunk: int = 1_000_000, world: World | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the ``n`` reference cells in chunks of ``chunk`` rows (the last may be shorter).

    Parameters
    ----------
    n, dim, seed
        Number of cells, embedding dimension, seed of world and cells.
    chunk
        Rows per yielded chunk; the concatenated rows do not depend on it.
    world
        A world from :func:`make_world` (default: ``make_world(dim, seed)``).

    Yields
    ------
    X, labels
        float32 (m, dim) embeddings and int32 (m,) labels (see :class:`World`).
    """
    n, chunk = _check_n("n", n), _check_n("chunk", chunk)
    world = world or make_world(dim, seed)
    if world.dim != dim:
        raise InputError(f"synthetic: world has dim {world.dim}, asked for dim {dim}")
    cache: dict = {}
    for start in range(0, n, chunk):
        yield _rows(world, _REFERENCE, start, min(start + chunk, n), cache)


def make_queries(
    n: int, dim: int = 32, seed: int = 0, world: World | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Query cells (float32 (n, dim), int32 labels), drawn apart from the reference cells.

    About ``query_unseen_fraction`` of them belong to types absent from the reference
    (``world.unseen``).
    """
    n = _check_n("n", n)
    world = world or make_world(dim, seed)
    if world.dim != dim:
        raise InputError(f"synthetic: world has dim {world.dim}, asked for dim {dim}")
    return _rows(world, _QUERY, 0, n, {})


def reference_sample(n: int, dim: int = 32, seed: int = 0, world: World | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` reference cells in one array (for small sizes and tests)."""
    Xs, Ls = zip(*iter_reference_chunks(n, dim, seed, chunk=max(1, n), world=world))
    return np.concatenate(Xs), np.concatenate(Ls)
