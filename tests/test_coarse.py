"""Two-level coarse quantisers (cellquery.index.coarse) and the faiss index that uses them (coarse: two_level),
against brute-force nearest centroids."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

import cellquery.index.coarse as coarse
from cellquery.errors import InputError
from cellquery.index import load_index, make_index
from cellquery.index.coarse import TwoLevelAssigner, allocate, two_level_kmeans


def blobs(sizes, dim=8, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(len(sizes), dim))
    X = np.concatenate([c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes)]).astype(np.float32)
    return X, np.repeat(np.arange(len(sizes)), sizes), centres


def sq_dist(X, C):
    X, C = X.astype(np.float64), C.astype(np.float64)
    return (X**2).sum(1)[:, None] + (C**2).sum(1)[None, :] - 2 * X @ C.T


def test_two_level_kmeans_gives_each_group_its_share_and_is_seeded():
    X, blob, centres = blobs([600, 300, 100])
    C = two_level_kmeans(X, 10, n_coarse=3, seed=4)
    assert C.shape == (10, 8) and C.dtype == np.float32
    owner = np.argmin(sq_dist(C, centres.astype(np.float32)), axis=1)  # the blob each centroid lies in
    assert np.bincount(owner, minlength=3).tolist() == [6, 3, 1]  # 10 x 600/1000, 10 x 300/1000, 10 x 100/1000
    assert np.array_equal(C, two_level_kmeans(X, 10, n_coarse=3, seed=4))
    assert not np.array_equal(C, two_level_kmeans(X, 10, n_coarse=3, seed=5))


@pytest.mark.parametrize("sizes, nlist, want", [
    ([600, 300, 100], 10, [6, 3, 1]),  # the shares, exactly
    ([500, 1], 20, [19, 1]),  # a one-row group keeps one centroid (its row)
    ([7, 3], 4, [3, 1]),  # floors 2 and 1; the fourth to 7 rows / 2 (3.5 rows each) before 3 / 1
    ([5, 5], 10, [5, 5]),  # every row a centroid
    ([1, 1, 1, 97], 3, [0, 0, 1, 2]),  # floors give 5: one fewer twice from the groups of fewest rows per centroid
])
def test_allocation_of_centroids_to_groups_by_hand(sizes, nlist, want):
    assert allocate(np.array(sizes), nlist).tolist() == want


def test_two_level_kmeans_refuses_fewer_rows_than_centroids():
    X, _, _ = blobs([300, 2])
    assert two_level_kmeans(X, 302, n_coarse=2).shape == (302, 8)  # every row a centroid
    with pytest.raises(InputError, match="needs >= 600 training rows"):
        two_level_kmeans(X, 600)


def test_assigner_probing_every_group_is_the_brute_force_nearest_centroid():
    X, _, _ = blobs([400] * 5, dim=12, seed=1, spread=2.0)
    C = two_level_kmeans(X, 40, seed=0)
    assigner = TwoLevelAssigner(C, nprobe=100, n_coarse=6, seed=0)
    got = assigner.assign(X)
    d = sq_dist(X, C)
    # every row on a centroid at the smallest distance (float32 rounding aside)
    assert np.allclose(d[np.arange(len(X)), got], d.min(axis=1), rtol=1e-4, atol=1e-3)
    assert np.mean(got == d.argmin(axis=1)) > 0.999


def test_assigner_with_few_groups_takes_the_nearest_centroid_of_the_groups_it_probes(monkeypatch):
    X, _, _ = blobs([300] * 8, dim=10, seed=2, spread=3.0)
    C = two_level_kmeans(X, 64, seed=0)
    assigner = TwoLevelAssigner(C, nprobe=2, n_coarse=8, seed=0)
    monkeypatch.setattr(coarse, "BLOCK", 500)  # several row blocks, on two workers
    got = assigner.assign(X, threads=2)
    assert np.array_equal(got, assigner.assign(X, threads=1))
    # brute force: each row's 2 nearest groups (coarse centroids), the nearest centroid among their members
    coarse_C = assigner.coarse
    groups = np.argsort(sq_dist(X, coarse_C), axis=1, kind="stable")[:, :2]
    member_group = np.empty(len(C), np.int64)
    for g in range(len(assigner.offsets) - 1):
        member_group[assigner.order[assigner.offsets[g] : assigner.offsets[g + 1]]] = g
    d = sq_dist(X, C)
    allowed = (member_group[None, :] == groups[:, :1]) | (member_group[None, :] == groups[:, 1:2])
    want = np.where(allowed, d, np.inf)
    assert np.allclose(d[np.arange(len(X)), got], want.min(axis=1), rtol=1e-4, atol=1e-3)
    assert allowed[np.arange(len(X)), got].all()
    # fewer groups probed: a few rows land on a near-nearest list, none on a nearer one
    assert (d[np.arange(len(X)), got] >= d.min(axis=1) - 1e-3).all()
    assert np.mean(got == d.argmin(axis=1)) > 0.9


def test_faiss_index_with_two_level_lists_stores_each_row_in_its_assigned_list_and_searches_exactly(tmp_path):
    X, _, _ = blobs([300] * 6, dim=8, seed=3, spread=2.0)
    params = dict(factory="IVF{nlist},Flat", nlist=30, nprobe=30, coarse="two_level", assign_nprobe=2)
    index = make_index("faiss", 8, params, seed=0)
    index.train(X)
    index.add(X[:1000])
    ivf = faiss.extract_index_ivf(index._index)
    centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
    lists = TwoLevelAssigner(centroids, nprobe=2, seed=0).assign(X[:1000])
    stored = np.full(1000, -1)
    for lst in range(ivf.nlist):
        size = ivf.invlists.list_size(lst)
        ids = faiss.rev_swig_ptr(ivf.invlists.get_ids(lst), size).copy() if size else []
        stored[np.asarray(ids, dtype=np.int64)] = lst
    assert np.array_equal(stored, lists)
    # saved, loaded, grown: the assigner is rebuilt from the quantiser; ids go on from 1000
    path = tmp_path / "two_level.cqindex"
    index.save(path)
    loaded = load_index(path)
    loaded.add(X[1000:])
    D, I = loaded.search(X[::37], 5)  # every list probed and flat codes: the exact neighbours
    d = sq_dist(X[::37], X)
    order = np.argsort(d, axis=1, kind="stable")[:, :5]
    assert np.allclose(D, np.sqrt(np.maximum(np.take_along_axis(d, order, axis=1), 0)), atol=1e-3)
    assert np.array_equal(I[:, 0], np.arange(0, len(X), 37))


@pytest.mark.parametrize("params, match", [
    (dict(factory="IVF{nlist},PQ4", coarse="kmeans"), "flat or two_level"),
    (dict(factory="IVF{nlist},PQ4", coarse="two_level", refine=True), "does not combine with 'refine'"),
    (dict(factory="IVF{nlist},PQ4", coarse="two_level", assign_nprobe=0), "assign_nprobe"),
])
def test_two_level_params_are_checked(params, match):
    with pytest.raises(InputError, match=match):
        make_index("faiss", 8, params)


@pytest.mark.parametrize("factory", ["Flat", "IVF{nlist}_HNSW32,Flat", "PCA4,IVF{nlist},Flat"])
def test_two_level_needs_an_ivf_with_a_flat_quantiser(factory):
    X, _, _ = blobs([200] * 3)
    index = make_index("faiss", 8, dict(factory=factory, nlist=8, coarse="two_level"))
    with pytest.raises(InputError, match="coarse: two_level"):
        index.train(X)
