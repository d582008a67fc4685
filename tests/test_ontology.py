"""Ontology class (hand-made DAGs) and the offline Cell Ontology."""

import time

import pytest

from cellquery.errors import InputError
from cellquery.ontology import Ontology, load_cell_ontology

#        r
#      /   \
#     a     b
#     |     |
#     c     |
#      \   /
#        d       (d has two parents; longest path to root d-c-a-r = 3)
DIAMOND = {"r": [], "a": ["r"], "b": ["r"], "c": ["a"], "d": ["c", "b"]}


def test_from_parents_closure_and_queries():
    o = Ontology.from_parents(DIAMOND, labels={"r": "root"})
    assert o.ancestors("d") == {"c", "a", "b", "r"}
    assert o.ancestors("r") == frozenset()
    assert o.descendants("a") == {"c", "d"}
    assert o.n_descendants("r") == 5 and o.n_descendants("d") == 1 and o.n_descendants("a") == 3
    assert o.is_ancestor("a", "d") and not o.is_ancestor("d", "a") and not o.is_ancestor("d", "d")
    assert [o.depth(t) for t in ("r", "a", "b", "c", "d")] == [0, 1, 1, 2, 3]
    assert o.parents("d") == {"c", "b"} and o.children("r") == {"a", "b"}
    assert o.label("r") == "root" and o.label("a") == "a"
    assert o.terms == ("a", "b", "c", "d", "r")
    assert "a" in o and "zz" not in o


def test_redundant_edge_parents_reduced():
    # d lists both c and its ancestor a as parents: closure is the same, parents() drops a
    o = Ontology.from_parents({**DIAMOND, "d": ["c", "b", "a"]})
    assert o.ancestors("d") == {"c", "a", "b", "r"}
    assert o.parents("d") == {"c", "b"}
    assert o.depth("d") == 3


def test_from_parents_errors():
    with pytest.raises(InputError, match="cycle"):
        Ontology.from_parents({"a": ["b"], "b": ["a"]})
    with pytest.raises(InputError, match="'x'"):
        Ontology.from_parents({"a": ["x"]})
    o = Ontology.from_parents(DIAMOND)
    for call in (o.ancestors, o.descendants, o.label, o.depth, o.n_descendants):
        with pytest.raises(InputError, match="nope"):
            call("nope")


def test_cell_ontology_facts():
    t0 = time.perf_counter()
    cl = load_cell_ontology()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = load_cell_ontology()
    assert again is cl  # cached
    assert time.perf_counter() - t0 < 0.01
    assert first < 5.0
    assert len(cl) > 3000
    assert cl.label("CL:0000084") == "T cell"
    assert cl.label("CL:0000000") == "cell"
    assert cl.label("CL:0000625") == "CD8-positive, alpha-beta T cell"
    assert "CL:0000084" in cl.ancestors("CL:0000625")  # CD8 αβ T cell is a T cell
    assert "CL:0000542" in cl.ancestors("CL:0000084")  # T cell is a lymphocyte
    assert "CL:0000625" in cl.descendants("CL:0000084")
    assert cl.is_ancestor("CL:0000000", "CL:0000625")
    assert cl.depth("CL:0000000") == 0
    assert cl.depth("CL:0000625") > cl.depth("CL:0000084") > 0
    assert cl.n_descendants("CL:0000084") == len(cl.descendants("CL:0000084")) + 1 > 50
    assert cl.term_by_label("T cell") == "CL:0000084"
    with pytest.raises(InputError, match="CL:9999999"):
        cl.ancestors("CL:9999999")


def test_cell_ontology_unknown_version():
    with pytest.raises(InputError, match="v1900-01-01"):
        load_cell_ontology("v1900-01-01")
