"""Neighbourhood-averaged expression and the spatial GNN: layers against dense brute force, masked pretraining."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from cellquery.errors import InputError
from cellquery.spatial.embed import neighbourhood_average, normalised_adjacency
from cellquery.spatial.gnn import (
    GATLayer,
    GCNLayer,
    build_model,
    fine_tune,
    masked_reconstruction_error,
    predict_proba,
    pretrain_masked,
    torch_graph,
)
from cellquery.spatial.graph import radius_graph


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _small_graph(n=30, seed=0):
    rng = np.random.default_rng(seed)
    coords = rng.uniform(0, 5, (n, 2))
    graph = radius_graph(coords, 1.3).tolil()
    graph[0, :] = 0  # an isolated cell (no neighbours)
    graph[:, 0] = 0
    graph = graph.tocsr()
    graph.eliminate_zeros()
    return graph, rng


def test_neighbourhood_average_against_loops():
    graph, rng = _small_graph()
    x = rng.normal(size=(30, 4))
    dense = graph.toarray().astype(float)
    mean = neighbourhood_average(x, graph)
    for i in range(30):
        members = [i, *np.flatnonzero(dense[i])]
        np.testing.assert_allclose(mean[i], x[members].mean(axis=0))
    np.testing.assert_allclose(mean[0], x[0])  # isolated: itself
    degree = dense.sum(axis=1) + 1
    sym = neighbourhood_average(x, graph, kind="sym")
    for i in range(30):
        expected = x[i] / degree[i] + sum(x[j] / np.sqrt(degree[i] * degree[j]) for j in np.flatnonzero(dense[i]))
        np.testing.assert_allclose(sym[i], expected, rtol=1e-10, atol=1e-14)
    no_self = neighbourhood_average(x, graph, self_loops=False)
    np.testing.assert_allclose(no_self[0], 0.0)
    with pytest.raises(InputError, match="normalisation"):
        normalised_adjacency(graph, "max")


def test_gcn_and_gat_layers_against_dense():
    graph, rng = _small_graph(seed=1)
    tg = torch_graph(graph)
    h = torch.as_tensor(rng.normal(size=(30, 5)), dtype=torch.float32)
    a_hat = torch.as_tensor(normalised_adjacency(graph, "sym").toarray(), dtype=torch.float32)
    torch.manual_seed(0)
    gcn = GCNLayer(5, 3)
    with torch.no_grad():
        np.testing.assert_allclose(gcn(h, tg).numpy(), (a_hat @ gcn.linear(h) + gcn.root(h)).numpy(), atol=1e-5)
        gat = GATLayer(5, 3)
        z = gat.linear(h)
        adj = torch.as_tensor(graph.toarray() > 0) | torch.eye(30, dtype=torch.bool)
        scores = torch.nn.functional.leaky_relu((z @ gat.att_self)[:, None] + (z @ gat.att_neighbour)[None, :], 0.2)
        alpha = torch.softmax(scores.masked_fill(~adj, -torch.inf), dim=1)
        expected = alpha @ z + gat.root(h) + gat.bias
        np.testing.assert_allclose(gat(h, tg).numpy(), expected.numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def tissue():
    from cellquery.data.simulate_spatial import simulate_sections

    adata = simulate_sections(500, sections=["s1", "s2"], seed=2)
    x = adata.X.toarray()
    x = np.log1p(x / x.sum(axis=1, keepdims=True) * 1e4)
    x = x[:, np.argsort(-x.var(axis=0))[:120]]
    first = (adata.obs["section"] == "s1").to_numpy()
    graphs = [torch_graph(radius_graph(adata.obsm["spatial"][rows], 20.0)) for rows in (first, ~first)]
    labels = np.unique(adata.obs["cell_type"].astype(str), return_inverse=True)[1]
    return x[first], x[~first], graphs[0], graphs[1], labels[first], labels[~first]


def test_masked_pretraining_reduces_held_out_reconstruction_error(tissue):
    x1, x2, g1, g2, _, _ = tissue
    held = np.zeros(len(x2), dtype=bool)  # 20 % of the other section's cells, all genes masked
    held[np.random.default_rng(0).permutation(len(x2))[: len(x2) // 5]] = True
    untrained = build_model(x1.shape[1], seed=0, layers=("gcn", "gat"))
    before = masked_reconstruction_error(untrained, x2, g2, held)
    model = build_model(x1.shape[1], seed=0, layers=("gcn", "gat"))
    assert masked_reconstruction_error(model, x2, g2, held) == before  # same seed, same network
    curve = pretrain_masked(model, x1, g1, mask_fraction=0.2, epochs=120, seed=0)  # pretrained on section s1 only
    after = masked_reconstruction_error(model, x2, g2, held)
    assert after < 0.5 * before and curve[-1] < 0.5 * curve[0]
    # and better than predicting every masked cell as the pretraining section's mean profile
    assert after < ((x2[held] - x1.mean(axis=0)) ** 2).mean()


def test_fine_tune_predicts_types_of_another_section(tissue):
    x1, x2, g1, g2, y1, y2 = tissue
    model = build_model(x1.shape[1], seed=0)
    head, curve = fine_tune(model, x1, g1, y1, np.ones(len(y1), dtype=bool), n_classes=int(y1.max()) + 1, epochs=100)
    proba = predict_proba(model, head, x2, g2)
    assert proba.shape == (len(x2), int(y1.max()) + 1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    majority = np.bincount(y2).max() / len(y2)
    assert (proba.argmax(axis=1) == y2).mean() > majority + 0.2 and curve[-1] < curve[0]
