"""CL accuracy / CL MBA (Cell BLAST Methods, "Cell Ontology inference")."""

import numpy as np
import pytest

from cellquery.errors import InputError
from cellquery.metrics import cl_accuracy, cl_mba
from cellquery.ontology import Ontology

# root
# ├── A
# │   ├── A1
# │   │   ├── A1a
# │   │   └── A1b
# │   └── A2
# └── B
#     └── B1
# |∇c| (descendants incl. self): root 8, A 5, A1 3, A1a 1, A1b 1, A2 1, B 2, B1 1
PARENTS = {"root": [], "A": ["root"], "A1": ["A"], "A1a": ["A1"], "A1b": ["A1"], "A2": ["A"], "B": ["root"], "B1": ["B"]}
TINY = Ontology.from_parents(PARENTS, name="tiny")
REFS = ["A1a", "A2", "B"]


def test_hand_worked_tiny():
    cells = {
        # positive (in ref). ancestor predictions, C_I = all terms from A1a up to the prediction
        # (each has a reference descendant-or-self):
        #   A    -> (|∇A1a| + |∇A1| + |∇A|)/|∇A| / 3 = (1/5 + 3/5 + 5/5)/3 = 0.6
        #   root -> (1 + 3 + 5 + 8)/8 / 4 = 17/32
        #   A1   -> (1/3 + 3/3)/2 = 2/3
        # A1a itself 1; unrelated A2 0; ambiguous 0; rejected 0
        "A1a": (["A1a", "A", "root", "A1", "A2", "ambiguous", "rejected"], (1 + 0.6 + 17 / 32 + 2 / 3) / 7),
        # positive (in ref). descendant B1 -> 1, itself -> 1, root -> C_I {B, root}: (2/8 + 8/8)/2 = 0.625
        "B": (["B1", "B", "root"], (1 + 1 + 0.625) / 3),
        # positive (ancestor B in ref). root -> C_I {B, root} (B1 has no reference descendant-or-self)
        #   = (2/8 + 1)/2 = 0.625; B -> C_I {B} = 2/2 = 1; itself 1
        "B1": (["root", "B", "B1"], (0.625 + 1 + 1) / 3),
        # positive (descendant A1a in ref). A -> C_I {A1, A} = (3/5 + 1)/2 = 0.8; descendant A1a -> 1
        "A1": (["A", "A1a"], (0.8 + 1) / 2),
        # negative (no reference term above or below): only rejections count
        "A1b": (["rejected", "unassigned", "ambiguous", "A1a"], 0.5),
    }
    true = [t for t, (preds, _) in cells.items() for _ in preds]
    pred = [p for preds, _ in cells.values() for p in preds]
    df = cl_accuracy(true, pred, REFS, TINY)
    assert list(df.columns) == ["term", "n_cells", "accuracy", "positive"]
    got = {r.term: (r.n_cells, r.accuracy, bool(r.positive)) for r in df.itertuples()}
    for term, (preds, acc) in cells.items():
        assert got[term][0] == len(preds)
        assert got[term][1] == pytest.approx(acc, abs=1e-12), term
        assert got[term][2] == (term != "A1b")
    assert cl_mba(true, pred, REFS, TINY) == pytest.approx(np.mean([a for _, a in cells.values()]), abs=1e-12)


def test_empty_intermediate_set_scores_zero():
    # ref {A}; true A1a is positive (ancestor A in ref). pred A1: C_I = {A1a, A1} but neither has a
    # reference descendant-or-self -> empty -> 0 (documented choice). pred A: C_I = {A} -> 5/5 = 1
    df = cl_accuracy(["A1a", "A1a"], ["A1", "A"], ["A"], TINY)
    assert df["accuracy"].tolist() == [0.5]


# ---------------------------------------------------------------- naive reference on random DAGs
def naive_ancestors(parents, t):
    out = set()
    for p in parents[t]:
        out.add(p)
        out |= naive_ancestors(parents, p)
    return out


def naive_score(parents, refs, ci, cj):
    terms = list(parents)
    anc = {t: naive_ancestors(parents, t) for t in terms}

    def le(a, b):  # a ≼ b
        return a == b or b in anc[a]

    positive = any(le(ci, r) or le(r, ci) for r in refs)
    if not positive:
        return 1.0 if cj in ("rejected", "unassigned") else 0.0
    if cj not in parents:
        return 0.0
    if le(cj, ci):
        return 1.0
    if ci != cj and le(ci, cj):
        def nd(c):
            return sum(1 for x in terms if le(x, c))

        vals = [nd(ck) / nd(cj) for ck in terms if le(ci, ck) and le(ck, cj) and any(le(r, ck) for r in refs)]
        return sum(vals) / len(vals) if vals else 0.0
    return 0.0


def test_random_dags_vs_naive():
    rng = np.random.default_rng(7)
    for trial in range(5):
        n = 14
        parents = {}
        for i in range(n):
            k = 0 if i == 0 else int(rng.integers(1, 3))
            parents[f"t{i}"] = sorted({f"t{int(j)}" for j in rng.integers(0, max(i, 1), k)}) if i else []
        onto = Ontology.from_parents(parents)
        refs = [f"t{int(i)}" for i in rng.choice(n, 4, replace=False)]
        true = [f"t{int(i)}" for i in rng.integers(0, n, 150)]
        pool = list(parents) + ["rejected", "unassigned", "ambiguous"]
        pred = [pool[int(i)] for i in rng.integers(0, len(pool), 150)]
        per_term = {}
        for t, p in zip(true, pred):
            per_term.setdefault(t, []).append(naive_score(parents, refs, t, p))
        df = cl_accuracy(true, pred, refs, onto)
        for r in df.itertuples():
            assert r.n_cells == len(per_term[r.term])
            assert abs(r.accuracy - sum(per_term[r.term]) / len(per_term[r.term])) < 1e-9
        want = sum(sum(v) / len(v) for v in per_term.values()) / len(per_term)
        assert abs(cl_mba(true, pred, refs, onto) - want) < 1e-9


def test_errors():
    with pytest.raises(InputError, match="CL:nope"):
        cl_accuracy(["CL:nope"], ["A"], REFS, TINY)
    with pytest.raises(InputError, match="zzz"):
        cl_accuracy(["A"], ["zzz"], REFS, TINY)
    with pytest.raises(InputError, match="Q"):
        cl_accuracy(["A"], ["A"], ["Q"], TINY)
    with pytest.raises(InputError):
        cl_accuracy(["A", "B"], ["A"], REFS, TINY)


def test_real_ontology_ancestor_prediction():
    from cellquery.ontology import load_cell_ontology

    onto = load_cell_ontology()
    # CD8 αβ T (CL:0000625) with reference {T cell (CL:0000084)}: predicting T cell, C_I = {T cell}
    # (no term below T cell on the path has a reference descendant) -> 1; predicting 'cell' (CL:0000000):
    # C_I = T cell and those of its ancestors that are ancestors of CL:0000625 (all of them) -> mean of
    # |∇c_k| / |∇cell| < 1
    df = cl_accuracy(["CL:0000625", "CL:0000625"], ["CL:0000084", "CL:0000000"], ["CL:0000084"], onto)
    between = [c for c in onto.ancestors("CL:0000625") if c == "CL:0000084" or onto.is_ancestor(c, "CL:0000084")]
    to_root = np.mean([onto.n_descendants(c) / onto.n_descendants("CL:0000000") for c in between])
    assert df["accuracy"].iloc[0] == pytest.approx((1.0 + to_root) / 2, abs=1e-12)
    assert 0 < to_root < 1
