"""Niches: neighbourhood composition against loops, k-means wiring, ARI against the simulated domains."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans

from cellquery.errors import InputError
from cellquery.spatial.graph import radius_graph
from cellquery.spatial.niche import neighbourhood_composition, niche_ari, niche_clusters


def test_composition_against_loops_and_kmeans_on_it():
    rng = np.random.default_rng(1)
    coords = rng.uniform(0, 6, (60, 2))
    labels = rng.choice(["b", "a", "c"], 60)
    graph = radius_graph(coords, 1.2)
    dense = graph.toarray() > 0
    composition, categories = neighbourhood_composition(labels, graph)
    assert list(categories) == ["a", "b", "c"]
    for i in range(60):
        members = labels[[i, *np.flatnonzero(dense[i])]]
        np.testing.assert_allclose(composition[i], [(members == c).mean() for c in categories])
    expected = KMeans(n_clusters=3, n_init=10, random_state=4).fit_predict(composition)
    np.testing.assert_array_equal(niche_clusters(labels, graph, 3, seed=4), expected)
    with pytest.raises(InputError, match="n_niches"):
        niche_clusters(labels, graph, 0)
    with pytest.raises(InputError, match="adjacency"):
        neighbourhood_composition(labels[:5], graph)


def test_niche_ari_hand_cases():
    assert niche_ari([1, 1, 0, 0], ["x", "x", "y", "y"]) == pytest.approx(1.0)  # relabelled, same partition
    # pairs together in both: 1; in the niches: 3; in the regions: 2; expected 3 * 2 / 6 = 1 -> ARI (1 - 1) / (2.5 - 1)
    assert niche_ari([0, 0, 0, 1], ["x", "x", "y", "y"]) == pytest.approx(0.0)
    assert niche_ari([0, 0, 1, 1, 1], ["x", "x", "x", "y", "y"]) == pytest.approx(
        (1 + 1 - (1 + 3) * (3 + 1) / 10) / (0.5 * (4 + 4) - (4 * 4) / 10)
    )


def test_niches_recover_simulated_domains_from_types():
    from cellquery.data.simulate_spatial import simulate_sections

    sections = simulate_sections(1200, sections=["s1", "s2"], seed=5)
    graph = radius_graph(sections.obsm["spatial"], 30.0, sections.obs["section"].to_numpy())  # ~28 neighbours
    types = sections.obs["cell_type"].to_numpy()
    ari = niche_ari(niche_clusters(types, graph, 4), sections.obs["domain"])
    shuffled = np.random.default_rng(0).permutation(types)  # same types, no spatial arrangement
    ari_shuffled = niche_ari(niche_clusters(shuffled, graph, 4), sections.obs["domain"])
    assert ari > 0.6 and ari_shuffled < 0.05
