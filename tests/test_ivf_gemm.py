"""Exact search with the fused top-k scan and the GEMM-batched IVF index, against brute force and faiss."""

import faiss
import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.index import build_index, load_index, make_index
from cellquery.index.gemm_backend import knn_gemm
from cellquery.transfer import label_codes, transfer_labels
from cellquery.transfer.acceptance import decide, decide_hits
from test_index import brute_force, clustered, recall


def faiss_flat(X, Q, k):
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    D, I = index.search(Q, k)
    return np.sqrt(np.maximum(D, 0)), I


def same_up_to_ties(I, D, I_ref, D_ref, tol=1e-4):
    """Ids equal wherever the reference's distance is not tied (within tol) with a neighbouring rank."""
    tied = np.zeros(D_ref.shape, bool)
    close = np.abs(np.diff(D_ref, axis=1)) <= tol
    tied[:, 1:] |= close
    tied[:, :-1] |= close
    assert (I[~tied] == I_ref[~tied]).all()
    for r in np.flatnonzero(tied.any(axis=1)):  # tied ranks: the same set of ids at the same distances
        np.testing.assert_allclose(np.sort(D[r]), np.sort(D_ref[r]), atol=tol)


def test_knn_gemm_equals_faiss_flat_and_brute_force():
    X, Q = clustered(5000, 300, dim=32)
    X[4000] = X[123]  # an exact duplicate: ties by the smaller id
    Q[0] = X[123]
    De, Ie = brute_force(X, Q, 50)
    Df, If = faiss_flat(X, Q, 50)
    for threads, qb, rb in ((1, 256, 1024), (2, 37, 200), (2, 64, 4096)):
        D, I = knn_gemm(Q, [X[:1700], X[1700:]], 50, threads=threads, query_block=qb, ref_block=rb)
        # float32 ||q||^2 + ||x||^2 - 2 q.x (as faiss) may swap neighbours whose distances differ by
        # less than its rounding (~1e-4 at distances ~8): equal ids elsewhere
        same_up_to_ties(I, D, Ie, De, tol=2e-3)
        same_up_to_ties(I, D, If, Df, tol=2e-3)
        assert (I == Ie).mean() > 0.99
    assert list(I[0, :2]) == [123, 4000]


def test_ivf_gemm_scanning_every_list_is_exact(tmp_path):
    X, Q = clustered(4000, 250, dim=16)
    De, Ie = brute_force(X, Q, 20)
    params = {"nlist": 25, "nprobe": 25, "query_block": 13, "ref_block": 50, "threads": 2}
    idx = build_index("ivf_gemm", X, params, seed=3, add_chunk=1500)  # three chunks, grouped at search
    D, I = idx.search(Q, 20)
    same_up_to_ties(I, D, Ie, De, tol=2e-3)
    Dg, Ig = knn_gemm(Q, [X], 20)  # the exact backend: the same float32 arithmetic
    np.testing.assert_array_equal(I, Ig)
    np.testing.assert_allclose(D, Dg, atol=1e-4)  # other GEMM block shapes round differently
    # adding after a search regroups; save / load keeps the lists
    idx2 = make_index("ivf_gemm", 16, params, seed=3)
    idx2.train(X)
    idx2.add(X[:1000])
    idx2.search(Q[:3], 5)
    idx2.add(X[1000:])
    np.testing.assert_array_equal(idx2.search(Q, 20)[1], Ig)
    idx2.save(tmp_path / "ivf.cqindex")
    loaded = load_index(tmp_path / "ivf.cqindex")
    D3, I3 = loaded.search(Q, 20)
    np.testing.assert_array_equal(I3, Ig)
    assert loaded.params["nlist"] == 25 and loaded.n == len(X)
    # fewer rows than k: padded
    D4, I4 = build_index("ivf_gemm", X[:6], {"nlist": 2, "nprobe": 2}).search(Q[:2], 8)
    np.testing.assert_array_equal(np.sort(I4[:, :6], axis=1), [list(range(6))] * 2)
    assert (I4[:, 6:] == -1).all() and np.isinf(D4[:, 6:]).all()


def test_ivf_gemm_probing_some_lists():
    X, Q = clustered(6000, 300, dim=32, n_clusters=30)
    De, Ie = brute_force(X, Q, 10)
    idx = build_index("ivf_gemm", X, {"nlist": 40, "nprobe": 4}, seed=0)
    D, I = idx.search(Q, 10)
    # 30 separated clusters cut into 40 lists: the 4 nearest lists hold almost every neighbour (seen 0.99)
    assert recall(I, Ie) > 0.95
    exact = np.linalg.norm(X[I].astype(np.float64) - Q[:, None, :], axis=2)
    np.testing.assert_allclose(D, exact, atol=2e-3)
    assert (np.diff(D, axis=1) >= 0).all()
    # one probed list finds fewer: the recall depends on nprobe
    assert recall(build_index("ivf_gemm", X, {"nlist": 40, "nprobe": 1}, seed=0).search(Q, 10)[1], Ie) < recall(I, Ie)
    # auto nlist: about sqrt(n); training on a subsample of 50 rows per list
    assert build_index("ivf_gemm", X, seed=0).params["nlist"] == 77


def _nearest_lists_by_brute_force(Q, C, nprobe):
    d = ((Q[:, None, :].astype(np.float64) - C[None].astype(np.float64)) ** 2).sum(-1)
    return np.lexsort((np.broadcast_to(np.arange(len(C)), d.shape), d), axis=1)[:, :nprobe]


@pytest.mark.parametrize("nlist, nprobe", [(300, 8), (300, 1), (50, 50), (1, 1), (5, 12)])
def test_probes_through_centroid_groups_are_the_nearest_lists(nlist, nprobe):
    """Groups of centroids skipped by their radius bound: the same lists as every centroid's distance."""
    X, Q = clustered(max(4000, 50 * nlist), 500, dim=16, n_clusters=20)
    Q = np.vstack([Q, Q[:50] * 20.0, np.zeros((1, 16), np.float32)]).astype(np.float32)  # far away queries too
    idx = build_index("ivf_gemm", X, {"nlist": nlist, "nprobe": nprobe, "threads": 2}, seed=0)
    got = idx.probes(Q, nprobe)
    np.testing.assert_array_equal(got, _nearest_lists_by_brute_force(Q, idx._centroids, min(nprobe, nlist)))
    groups = idx._probe_groups
    assert len(groups[2]) == max(1, round(np.sqrt(nlist)))  # about sqrt(nlist) groups (centres)


def test_probes_break_ties_by_list_and_ignore_the_grouping(monkeypatch):
    """Integer coordinates (exact sums in any order): equal distances go to the smaller list, whatever the groups."""
    import cellquery.index.ivf_gemm_backend as backend

    rng = np.random.default_rng(1)
    X = rng.integers(-3, 4, size=(3000, 6)).astype(np.float32)
    idx = build_index("ivf_gemm", X, {"nlist": 64, "nprobe": 5}, seed=0)
    idx._centroids = np.round(idx._centroids).astype(np.float32)  # many centroids at equal distances
    Q = rng.integers(-3, 4, size=(400, 6)).astype(np.float32)
    want = _nearest_lists_by_brute_force(Q, idx._centroids, 5)
    np.testing.assert_array_equal(idx.probes(Q, 5), want)
    for seed in (1, 2):  # other groupings (a new seed of the groups' k-means): the same lists
        monkeypatch.setattr(idx, "_probe_groups", (idx._centroids, *backend.centroid_groups(idx._centroids, seed)))
        np.testing.assert_array_equal(idx.probes(Q, 5), want)


@pytest.mark.parametrize("nb, k", [(500, 30), (64, 8), (40, 30), (1000, 1)])
def test_scan_block_seeded_keeps_the_k_smallest_by_value_then_column(nb, k):
    """The first-list scan (run-minimum bound, heap of the values under it; pushes into a started heap) against a brute-force sort, ties included."""
    from cellquery.index.ivf_gemm_backend import _scan_block_seeded

    rng = np.random.default_rng(nb + k)
    S = rng.integers(-8, 8, (12, nb)).astype(np.float32)  # small integers: many exactly equal sums
    norms = rng.integers(0, 4, nb).astype(np.float32)
    rows = rng.permutation(20)[:12]  # heap rows of the block's rows, not in order
    heap_d = np.full((20, k), np.inf, np.float32)
    heap_i = np.full((20, k), -1, np.int64)
    # row 0 starts from a full heap (a later list), row 1 from a partly filled one; their ids are
    # below the block's (admitted earlier), so that ties by id and ties by admission agree
    full = np.sort(rng.integers(-8, 0, k).astype(np.float32))
    heap_d[rows[0]], heap_i[rows[0]] = full[::-1], np.arange(k)[::-1]
    heap_d[rows[1], -1], heap_i[rows[1], -1] = np.float32(-3.0), 50  # a leaf: the root stays +inf
    start = [(heap_d[r].copy(), heap_i[r].copy()) for r in rows]
    _scan_block_seeded(S, norms, 100, heap_d, heap_i, rows)
    for r, (d0, i0) in zip(range(12), start):
        values = np.concatenate([d0[i0 >= 0], norms + S[r]])
        ids = np.concatenate([i0[i0 >= 0], 100 + np.arange(nb)])
        best = np.lexsort((ids, values))[:k]  # the k smallest by (value, id)
        got = np.lexsort((heap_i[rows[r]], heap_d[rows[r]]))
        np.testing.assert_array_equal(heap_i[rows[r]][got], ids[best])
        np.testing.assert_array_equal(heap_d[rows[r]][got], values[best])
        hd, hi = heap_d[rows[r]], heap_i[rows[r]]
        for child in range(1, k):  # a max-heap by (distance, id)
            parent = (child - 1) // 2
            assert (hd[parent], hi[parent]) >= (hd[child], hi[child])
    untouched = np.setdiff1d(np.arange(20), rows)
    assert np.isinf(heap_d[untouched]).all() and (heap_i[untouched] == -1).all()


def test_ivf_gemm_bad_params():
    with pytest.raises(InputError, match="nprobe"):
        make_index("ivf_gemm", 4, {"nprobe": 0})
    with pytest.raises(InputError, match="'self_search' must be rows or leaves"):
        make_index("ivf_gemm", 4, {"self_search": "graph"})
    with pytest.raises(InputError, match="leaf_nprobe"):
        make_index("ivf_gemm", 4, {"leaf_nprobe": 0})
    with pytest.raises(InputError, match="nlist=50 exceeds"):
        build_index("ivf_gemm", np.zeros((10, 4), np.float32), {"nlist": 50})


def test_label_codes_equal_numpy_unique_and_votes_unchanged():
    for labels in (np.array(["b", "a", "c", "a", "B", "10", "9"]), pd.Categorical(["x", "y", "x"], categories=["z", "y", "x"]),
                   pd.Series(["b", "a"], dtype="category"), [1, 2, 1, 3]):
        names, codes = label_codes(labels)
        n2, c2 = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
        np.testing.assert_array_equal(names, n2)
        np.testing.assert_array_equal(codes, c2)
    # kernel votes summed by hand (np.add.at), the same labels and shares
    rng = np.random.default_rng(0)
    ref = rng.choice(["t1", "t2", "t3"], size=50)
    I = rng.integers(0, 50, size=(40, 7))
    D = np.sort(rng.random((40, 7)), axis=1).astype(np.float32)
    out = transfer_labels(pd.Categorical(ref), D, I, voter="kernel", min_fraction=0.0)
    sigma = D[:, -1:].astype(np.float64)
    w = np.exp(-D.astype(np.float64) ** 2 / (2 * sigma**2))
    names, codes = np.unique(ref, return_inverse=True)
    votes = np.zeros((40, 3))
    np.add.at(votes, (np.repeat(np.arange(40), 7), codes[I].ravel()), (w / w.sum(1, keepdims=True)).ravel())
    np.testing.assert_array_equal(out["prediction"].to_numpy(), names[votes.argmax(1)])
    np.testing.assert_allclose(out["top_fraction"].to_numpy(), votes.max(1) / votes.sum(1))
    # the rule from the counted hits alone equals the rule on np.add.at's table of their votes
    mask = rng.random(I.shape) < 0.6
    mask[0] = False  # no counted hit: rejected, share 0
    mask[1] = [True] * 4 + [False] * 3
    w_any = np.where(mask, rng.random(I.shape), np.nan)  # an uncounted hit's weight is never read
    w_any[1, :4] = 1.0
    a, b = np.flatnonzero(ref == "t2")[0], np.flatnonzero(ref == "t1")[0]
    I[1, :4] = [a, b, a, b]  # a tie between two labels: the smaller code (t1) wins with share 0.5
    table = np.zeros((40, 3))
    rows = np.repeat(np.arange(40), 7).reshape(I.shape)
    np.add.at(table, (rows[mask], codes[I][mask]), w_any[mask])
    for min_hits, min_fraction in ((2, 0.5), (1, 0.0), (3, 0.7)):
        expected, expected_share = decide(table, mask.sum(1), names, min_hits=min_hits, min_fraction=min_fraction)
        got, share, n_hits = decide_hits(codes[I], w_any, mask, names, min_hits=min_hits, min_fraction=min_fraction)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_allclose(share, expected_share, rtol=1e-12)
        np.testing.assert_array_equal(n_hits, mask.sum(1))
    assert share[0] == 0 and got[0] == "rejected"
    assert share[1] == 0.5 and got[1] == "ambiguous" and decide_hits(codes[I], w_any, mask, names, min_fraction=0.4)[0][1] == "t1"
    # a categorical with a category no cell has, codes read through its own codes
    cat = pd.Categorical(ref, categories=["t3", "a-unused", "t1", "t2"])  # sorts before the used ones
    masked = transfer_labels(cat, D, I, voter="kernel", mask=mask, min_fraction=0.0, min_hits=1)
    plain = transfer_labels(ref, D, I, voter="kernel", mask=mask, min_fraction=0.0, min_hits=1)
    pd.testing.assert_frame_equal(masked, plain, check_exact=True)
    assert set(masked["prediction"]) <= {"t1", "t2", "t3", "rejected"}


def test_transfer_labels_in_row_blocks_on_threads_equals_one_block(monkeypatch):
    """Blocks of at most CHUNK cells on several workers vote as one block on one: each cell reads its own row only."""
    import cellquery.transfer as transfer

    rng = np.random.default_rng(3)
    ref = pd.Categorical(rng.choice([f"t{j}" for j in range(12)], size=3000))
    I = rng.integers(-1, 3000, size=(9000, 9))  # with missing hits (-1)
    D = np.sort(rng.random(I.shape), axis=1).astype(np.float32)
    mask = rng.random(I.shape) < 0.8
    for voter in ("kernel", "balanced", "majority"):
        whole = transfer_labels(ref, D, I, voter=voter, mask=mask, max_distance=0.9, threads=1)
        monkeypatch.setattr(transfer, "CHUNK", 700)  # 13 blocks dealt to 3 workers
        seen = []
        real = transfer.in_row_blocks
        monkeypatch.setattr(transfer, "in_row_blocks",
                            lambda n, work, threads, max_block: real(n, lambda a, b: (seen.append(b - a), work(a, b)),
                                                                     threads, max_block=max_block))
        blocks = transfer_labels(ref, D, I, voter=voter, mask=mask, max_distance=0.9, threads=3)
        monkeypatch.undo()
        assert max(seen) == 700 and sum(seen) == 9000 and len(seen) == 13
        pd.testing.assert_frame_equal(blocks, whole)
        # and the rule of the counted hits, from one decide_hits over all rows
        names, codes = label_codes(ref)
        counted = mask & (I >= 0) & (D <= 0.9)
        w = transfer.VOTERS[voter](codes[np.where(I >= 0, I, 0)], counted, D, np.bincount(codes) / len(codes))
        pred, share, n_hits = decide_hits(codes[np.where(I >= 0, I, 0)], w, counted, names)
        np.testing.assert_array_equal(whole["prediction"].to_numpy(), pred)
        np.testing.assert_array_equal(whole["top_fraction"].to_numpy(), share)
        np.testing.assert_array_equal(whole["n_hits"].to_numpy(), n_hits)
