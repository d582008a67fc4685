"""Accuracy(t), MBA (Cell BLAST Methods, "Benchmarking query-based cell typing") and expected matrices."""

import math

import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.metrics import (
    accuracy,
    expected_from_csv,
    expected_from_ontology,
    mean_balanced_accuracy,
    per_type_accuracy,
)
from cellquery.ontology import Ontology


def naive_mba(true, pred, refs, expected=None):
    per_type = {}
    for t in sorted(set(true)):
        n = 0
        ok = 0
        for ti, pi in zip(true, pred):
            if ti != t:
                continue
            n += 1
            if t in refs:
                if expected is None:
                    ok += pi == t
                else:
                    ok += bool(pi in expected.columns and expected.loc[t, pi])
            else:
                ok += pi == "rejected"
        per_type[t] = (n, ok / n, t in refs)
    pos = [a for n, a, p in per_type.values() if p]
    neg = [a for n, a, p in per_type.values() if not p]
    mp = sum(pos) / len(pos) if pos else math.nan
    mn = sum(neg) / len(neg) if neg else math.nan
    sides = [v for v in (mp, mn) if not math.isnan(v)]
    return per_type, mp, mn, sum(sides) / len(sides)


# Hand-worked case. ref types {T, B}.
#   T (positive): preds T, T, B, ambiguous   -> 2/4 = 0.5
#   B (positive): preds B, rejected          -> 1/2 = 0.5 (rejecting a positive is wrong)
#   NK (negative): preds rejected, T, ambiguous -> 1/3
# MBA+ = 0.5, MBA- = 1/3, mean = 5/12; accuracy = (2 + 1 + 1)/9 = 4/9
TRUE = ["T", "T", "T", "T", "B", "B", "NK", "NK", "NK"]
PRED = ["T", "T", "B", "ambiguous", "B", "rejected", "rejected", "T", "ambiguous"]
REFS = ["T", "B"]


def test_hand_worked_mba():
    got = mean_balanced_accuracy(TRUE, PRED, REFS)
    assert got["positive"] == pytest.approx(0.5, abs=1e-12)
    assert got["negative"] == pytest.approx(1 / 3, abs=1e-12)
    assert got["mean"] == pytest.approx(5 / 12, abs=1e-12)
    assert accuracy(TRUE, PRED, REFS) == pytest.approx(4 / 9, abs=1e-12)


def test_hand_worked_per_type_table():
    df = per_type_accuracy(TRUE, PRED, REFS)
    assert list(df.columns) == ["type", "n_cells", "accuracy", "positive"]
    rows = {r.type: (r.n_cells, r.accuracy, r.positive) for r in df.itertuples()}
    assert rows["T"] == (4, 0.5, True)
    assert rows["B"] == (2, 0.5, True)
    assert rows["NK"][0] == 3
    assert rows["NK"][1] == pytest.approx(1 / 3, abs=1e-12)
    assert not rows["NK"][2]


def test_hand_worked_with_expected():
    # M: T may be predicted as T or lymphocyte; B as B or lymphocyte.
    #   T: T ok, T ok, B no, ambiguous no (not a column)      -> 0.5
    #   B: lymphocyte ok, rejected no                         -> 0.5
    #   NK (negative): rejected ok, lymphocyte no             -> 0.5 (M is not used for negatives)
    # MBA+ = 0.5, MBA- = 0.5, mean 0.5
    M = pd.DataFrame({"T": [1, 0], "B": [0, 1], "lymphocyte": [1, 1]}, index=["T", "B"])
    true = ["T", "T", "T", "T", "B", "B", "NK", "NK"]
    pred = ["T", "T", "B", "ambiguous", "lymphocyte", "rejected", "rejected", "lymphocyte"]
    got = mean_balanced_accuracy(true, pred, REFS, expected=M)
    assert got == {"positive": 0.5, "negative": 0.5, "mean": 0.5}


def test_only_one_side():
    got = mean_balanced_accuracy(["T", "T"], ["T", "B"], ["T", "B"])
    assert got["positive"] == 0.5 and math.isnan(got["negative"]) and got["mean"] == 0.5
    got = mean_balanced_accuracy(["X", "X"], ["rejected", "B"], ["T"])
    assert math.isnan(got["positive"]) and got["negative"] == 0.5 and got["mean"] == 0.5


def test_random_vs_naive():
    rng = np.random.default_rng(5)
    types = ["a", "b", "c", "d", "e"]
    true = rng.choice(types, 300).tolist()
    pred = rng.choice(types[:3] + ["rejected", "ambiguous"], 300).tolist()
    refs = ["a", "b", "c"]
    M = pd.DataFrame(rng.integers(0, 2, (5, 4)).astype(bool), index=types, columns=["a", "b", "c", "rejected"])
    for expected in (None, M):
        per_type, mp, mn, mean = naive_mba(true, pred, refs, expected)
        got = mean_balanced_accuracy(true, pred, refs, expected=expected)
        assert abs(got["positive"] - mp) < 1e-9 and abs(got["negative"] - mn) < 1e-9 and abs(got["mean"] - mean) < 1e-9
        df = per_type_accuracy(true, pred, refs, expected=expected)
        for r in df.itertuples():
            n, acc, pos = per_type[r.type]
            assert r.n_cells == n and abs(r.accuracy - acc) < 1e-9 and bool(r.positive) == pos
    n_ok = sum((p == t) if t in refs else (p == "rejected") for t, p in zip(true, pred))
    assert abs(accuracy(true, pred, refs) - n_ok / 300) < 1e-9


def test_bad_inputs():
    with pytest.raises(InputError):
        mean_balanced_accuracy(["a", "b"], ["a"], ["a"])
    with pytest.raises(InputError):
        mean_balanced_accuracy(["a", None], ["a", "a"], ["a"])
    with pytest.raises(InputError, match="no row"):
        mean_balanced_accuracy(["a"], ["a"], ["a"], expected=pd.DataFrame({"a": [True]}, index=["z"]))
    with pytest.raises(InputError):
        mean_balanced_accuracy(["a"], ["a"], ["a"], expected=pd.DataFrame({"a": [2]}, index=["a"]))


def test_expected_from_csv(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("true,T,B,lymphocyte\nT,1,0,true\nB,0,1,TRUE\nNK,false,0,0\n")
    M = expected_from_csv(p)
    assert M.loc["T"].tolist() == [True, False, True]
    assert M.loc["B"].tolist() == [False, True, True]
    assert M.loc["NK"].tolist() == [False, False, False]
    assert M.dtypes.map(lambda d: d == bool).all()


@pytest.mark.parametrize(
    "text", ["true,T\nT,yes\n", "true,T\nT,\n", "true,T,T\nT,1,1\n", "true,T\nT,1\nT,0\n", ""]
)
def test_expected_from_csv_bad(tmp_path, text):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(InputError, match="bad.csv"):
        expected_from_csv(p)


def test_expected_from_csv_missing(tmp_path):
    with pytest.raises(InputError, match="nope.csv"):
        expected_from_csv(tmp_path / "nope.csv")


def test_expected_from_ontology_hand_worked():
    # cell <- lymphocyte <- T cell <- CD8 T ; lymphocyte <- B cell
    onto = Ontology.from_parents(
        {"CL:cell": [], "CL:lym": ["CL:cell"], "CL:T": ["CL:lym"], "CL:CD8": ["CL:T"], "CL:B": ["CL:lym"]}
    )
    t2c = {"CD8 T": "CL:CD8", "T": "CL:T", "B": "CL:B", "lymphocyte": "CL:lym"}
    M = expected_from_ontology(["CD8 T", "B"], ["T", "B", "lymphocyte"], t2c, onto)
    # CD8 T: T (ancestor) ok, B no, lymphocyte (ancestor) ok;  B: B (itself) ok, lymphocyte ok
    assert M.loc["CD8 T"].tolist() == [True, False, True]
    assert M.loc["B"].tolist() == [False, True, True]
    with pytest.raises(InputError):
        expected_from_ontology(["NK"], ["T"], t2c, onto)
    with pytest.raises(InputError):
        expected_from_ontology(["T"], ["T"], {"T": "CL:unknown"}, onto)
