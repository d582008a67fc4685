"""Expected-prediction matrices M for query-based cell typing.

The Cell BLAST paper (Cao et al. 2020), Methods, "Benchmarking query-based cell
typing": rows of M are actual cell types, columns predictions; a prediction is
correct when M is 1.
The paper compiled M by hand (Supplementary Data 3); :func:`expected_from_csv`
reads such a matrix and :func:`expected_from_ontology` derives one from the Cell
Ontology (a prediction is acceptable when its term is the true term or one of
the true term's ancestors).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from cellquery.errors import InputError
from cellquery.ontology import Ontology

_TRUE = {"1", "true", "1.0"}
_FALSE = {"0", "false", "0.0"}


def expected_from_csv(path, index_col: int = 0, sep: str = ",") -> pd.DataFrame:
    """Read an expected-prediction matrix.

    Parameters
    ----------
    path
        CSV file: first column the true types, header the acceptable predictions,
        cells 0/1 or true/false (case-insensitive).
    index_col, sep
        Passed to :func:`pandas.read_csv`.

    Returns
    -------
    pandas.DataFrame
        Boolean matrix, index = true types, columns = predictions.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, header=None, sep=sep, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: cannot read expected-prediction matrix ({exc})") from exc
    if table.shape[0] < 2 or table.shape[1] < 2:
        raise InputError(f"{path}: expected-prediction matrix is empty")
    # header read by hand so that duplicate column names are not silently renamed
    header = table.iloc[0].tolist()
    raw = table.iloc[1:].set_index(index_col)
    raw.columns = [h for i, h in enumerate(header) if i != index_col]
    raw.index = raw.index.astype(str)
    if raw.index.has_duplicates:
        raise InputError(f"{path}: duplicate true type '{raw.index[raw.index.duplicated()][0]}'")
    if raw.columns.has_duplicates:
        raise InputError(f"{path}: duplicate prediction column '{raw.columns[raw.columns.duplicated()][0]}'")
    out = pd.DataFrame(False, index=raw.index.astype(str), columns=raw.columns.astype(str))
    for j, col in enumerate(raw.columns):
        for i, val in enumerate(raw[col].to_numpy()):
            v = str(val).strip().lower()
            if v in _TRUE:
                out.iat[i, j] = True
            elif v not in _FALSE:
                raise InputError(
                    f"{path}: row '{raw.index[i]}', column '{col}': value {val!r} is not 0/1 or true/false"
                )
    out.index.name = "true_type"
    return out


def expected_from_ontology(
    true_types: Iterable[str],
    ref_types: Iterable[str],
    type_to_cl: Mapping[str, str],
    ontology: Ontology,
) -> pd.DataFrame:
    """Derive M from the Cell Ontology.

    Parameters
    ----------
    true_types
        Query cell types (rows).
    ref_types
        Reference cell types, i.e. the predictions a method can make (columns).
    type_to_cl
        Cell type name -> CL term id, for every true and reference type.
    ontology
        The ontology, e.g. :func:`cellquery.ontology.load_cell_ontology`.

    Returns
    -------
    pandas.DataFrame
        Boolean, ``M.loc[t, r]`` true when CL(r) is CL(t) or an ancestor of CL(t).
    """
    rows = list(dict.fromkeys(true_types))
    cols = list(dict.fromkeys(ref_types))
    for name in rows + cols:
        if name not in type_to_cl:
            raise InputError(f"type_to_cl: no CL term for cell type '{name}'")
        ontology.check(type_to_cl[name], field=f"CL term of cell type '{name}'")
    out = pd.DataFrame(False, index=pd.Index(rows, name="true_type"), columns=cols)
    for t in rows:
        tc = type_to_cl[t]
        anc = ontology.ancestors(tc)
        for r in cols:
            rc = type_to_cl[r]
            out.at[t, r] = rc == tc or rc in anc
    return out
