"""Cell Ontology (CL) access, offline.

The ontology is read from the data shipped with the ``cellxgene-ontology-guide``
package (``data/CL-ontology-<version>.json.zst``). That file stores, for every CL
term, its label, a deprecation flag and the full set of its CL ancestors with the
shortest distance to each (distance 1 = direct parent). The ancestor sets mix
``is_a`` and ``part_of`` links (the package flattens both); they are used as given,
so "ancestor" below means "reachable upwards by is_a or part_of". Links through
non-CL terms are not in the file: a few subcellular terms (e.g. CL:0017503)
list ``CL:0000000`` as an ancestor at distance > 1 with no CL term in between,
and are then treated as its direct children.

:class:`Ontology` is a small immutable DAG (terms, labels, ancestors, descendants,
depth) that can also be built from a hand-made parent map for tests:
``Ontology.from_parents({"CL:a": [], "CL:b": ["CL:a"]})``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from cellquery.errors import InputError

__all__ = ["Ontology", "load_cell_ontology", "cell_ontology_path"]


class Ontology:
    """A directed acyclic graph of ontology terms.

    Parameters
    ----------
    ancestors
        Term -> set of its strict ancestors (transitively closed, self excluded).
        Every ancestor must itself be a term.
    labels
        Term -> human-readable label (missing labels default to the term id).
    name
        Name used in error messages (e.g. ``"Cell Ontology v2026-03-26"``).
    deprecated
        Terms flagged obsolete in the source.

    Notes
    -----
    Instances are immutable; query methods raise :class:`InputError` for an
    unknown term id.
    """

    def __init__(
        self,
        ancestors: Mapping[str, Iterable[str]],
        labels: Mapping[str, str] | None = None,
        name: str = "ontology",
        deprecated: Iterable[str] = (),
    ):
        self.name = name
        anc = {str(t): frozenset(map(str, a)) for t, a in ancestors.items()}
        for t, a in anc.items():
            if t in a:
                raise InputError(f"{name}: term '{t}' is listed among its own ancestors")
            missing = a.difference(anc)
            if missing:
                raise InputError(
                    f"{name}: ancestor '{sorted(missing)[0]}' of term '{t}' is not a term"
                )
        self._anc = MappingProxyType(anc)
        labels = dict(labels or {})
        self._labels = MappingProxyType({t: str(labels.get(t, t)) for t in anc})
        self._deprecated = frozenset(d for d in deprecated if d in anc)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_parents(
        cls,
        parents: Mapping[str, Iterable[str]],
        labels: Mapping[str, str] | None = None,
        name: str = "ontology",
    ) -> "Ontology":
        """Build from a term -> direct parents map (the transitive closure is computed).

        Raises
        ------
        InputError
            If a parent is not a term or the graph has a cycle.
        """
        par = {str(t): [str(p) for p in ps] for t, ps in parents.items()}
        for t, ps in par.items():
            for p in ps:
                if p not in par:
                    raise InputError(f"{name}: parent '{p}' of term '{t}' is not a term")
        closure: dict[str, frozenset[str]] = {}
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done

        for start in par:
            if start in closure:
                continue
            # iterative depth-first search, post-order
            stack = [(start, iter(par[start]))]
            state[start] = 1
            while stack:
                term, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    acc = set()
                    for p in par[term]:
                        acc.add(p)
                        acc |= closure[p]
                    closure[term] = frozenset(acc)
                    state[term] = 2
                elif state.get(nxt) == 1:
                    raise InputError(f"{name}: cycle through term '{nxt}'")
                elif nxt not in closure:
                    state[nxt] = 1
                    stack.append((nxt, iter(par[nxt])))
        return cls(closure, labels=labels, name=name)

    # ---------------------------------------------------------------- queries
    @property
    def terms(self) -> tuple[str, ...]:
        """All term ids, sorted."""
        return self._sorted_terms

    @functools.cached_property
    def _sorted_terms(self) -> tuple[str, ...]:
        return tuple(sorted(self._anc))

    def __contains__(self, term: object) -> bool:
        return isinstance(term, str) and term in self._anc

    def __len__(self) -> int:
        return len(self._anc)

    def __repr__(self) -> str:
        return f"Ontology({self.name!r}, {len(self)} terms)"

    def check(self, term: str, field: str = "term") -> str:
        """Return ``term`` if known, else raise :class:`InputError` naming it."""
        if term not in self:
            raise InputError(f"{self.name}: {field} '{term}' is not a known term")
        return term

    def label(self, term: str) -> str:
        """Label of ``term``."""
        return self._labels[self.check(term)]

    def is_deprecated(self, term: str) -> bool:
        """Whether ``term`` is flagged obsolete in the source."""
        return self.check(term) in self._deprecated

    def ancestors(self, term: str) -> frozenset[str]:
        """Strict ancestors of ``term`` (self excluded)."""
        return self._anc[self.check(term)]

    def descendants(self, term: str) -> frozenset[str]:
        """Strict descendants of ``term`` (self excluded)."""
        return self._desc[self.check(term)]

    def n_descendants(self, term: str) -> int:
        """Number of descendants of ``term`` including itself (|∇c| of the Cell BLAST paper's CL accuracy)."""
        return len(self._desc[self.check(term)]) + 1

    def parents(self, term: str) -> frozenset[str]:
        """Direct parents: ancestors that are not ancestors of another ancestor."""
        return self._parents[self.check(term)]

    def children(self, term: str) -> frozenset[str]:
        """Direct children of ``term``."""
        return self._children[self.check(term)]

    def is_ancestor(self, a: str, b: str) -> bool:
        """True when ``a`` is a strict ancestor of ``b``."""
        self.check(a)
        return a in self._anc[self.check(b)]

    def depth(self, term: str) -> int:
        """Longest path (number of links) from ``term`` up to a root; roots have 0."""
        return self._depth[self.check(term)]

    def term_by_label(self, label: str) -> str:
        """Term id whose label is ``label`` (exact match); error if none or several."""
        hits = self._by_label.get(label, ())
        if len(hits) != 1:
            what = "no term" if not hits else f"{len(hits)} terms"
            raise InputError(f"{self.name}: label '{label}' matches {what}")
        return hits[0]

    # ------------------------------------------------------- derived (lazy)
    @functools.cached_property
    def _desc(self) -> Mapping[str, frozenset[str]]:
        return _inverse(self._anc)

    @functools.cached_property
    def _parents(self) -> Mapping[str, frozenset[str]]:
        out = {}
        for t, anc in self._anc.items():
            covered: set[str] = set()
            for a in anc:
                covered |= self._anc[a]
            out[t] = frozenset(anc - covered)
        return MappingProxyType(out)

    @functools.cached_property
    def _children(self) -> Mapping[str, frozenset[str]]:
        return _inverse(self._parents)

    @functools.cached_property
    def _depth(self) -> Mapping[str, int]:
        # A strict ancestor has strictly fewer ancestors, so visiting terms by
        # ancestor count sees every ancestor first. The longest chain in the
        # transitive closure equals the longest path in the DAG.
        depth: dict[str, int] = {}
        for t in sorted(self._anc, key=lambda x: len(self._anc[x])):
            anc = self._anc[t]
            depth[t] = 1 + max(depth[a] for a in anc) if anc else 0
        return MappingProxyType(depth)

    @functools.cached_property
    def _by_label(self) -> Mapping[str, tuple[str, ...]]:
        by: dict[str, list[str]] = {}
        for t in self._sorted_terms:
            by.setdefault(self._labels[t], []).append(t)
        return MappingProxyType({k: tuple(v) for k, v in by.items()})


def _inverse(links: Mapping[str, frozenset[str]]) -> Mapping[str, frozenset[str]]:
    """Reverse a term -> linked terms map (ancestors -> descendants, parents -> children).

    Every term of ``links`` is a key of the result, with no links if none point to it.
    """
    inverse: dict[str, set[str]] = {t: set() for t in links}
    for t, targets in links.items():
        for target in targets:
            inverse[target].add(t)
    return MappingProxyType({t: frozenset(s) for t, s in inverse.items()})


# ---------------------------------------------------------------- loading
_CL_FILE = re.compile(r"^CL-ontology-(.+)\.json\.zst$")


def _package_data_dir() -> Path:
    spec = importlib.util.find_spec("cellxgene_ontology_guide")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("cellxgene-ontology-guide: package not installed (needed for the Cell Ontology)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def cell_ontology_path(version: str | None = None) -> Path:
    """Path of the CL file inside ``cellxgene-ontology-guide``.

    Parameters
    ----------
    version
        e.g. ``"v2026-03-26"``. ``None``: the version the package marks as latest
        (``latest_ontology_info.json``), else the newest file present.
    """
    data = _package_data_dir()
    found = {m.group(1): p for p in data.glob("CL-ontology-*.json.zst") if (m := _CL_FILE.match(p.name))}
    if not found:
        raise InputError(f"{data}: no CL-ontology-*.json.zst file")
    if version is None:
        info = data / "latest_ontology_info.json"
        try:
            version = json.loads(info.read_text())["ontologies"]["CL"]["version"]
        except (OSError, KeyError, ValueError):
            version = None
        if version not in found:
            version = sorted(found)[-1]
    if version not in found:
        raise InputError(f"{data}: Cell Ontology version '{version}' not found (have {sorted(found)})")
    return found[version]


@functools.lru_cache(maxsize=4)
def load_cell_ontology(version: str | None = None) -> Ontology:
    """Load the Cell Ontology shipped with ``cellxgene-ontology-guide`` (cached).

    Parameters
    ----------
    version
        CL release, e.g. ``"v2026-03-26"``; ``None`` for the package's latest.

    Returns
    -------
    Ontology
        All CL terms of the file (obsolete ones included, flagged), labels, and the
        ancestor sets as given by the package: they mix ``is_a`` and ``part_of``
        links. Unknown term ids raise :class:`InputError` in every query method.
    """
    import zstandard

    path = cell_ontology_path(version)
    try:
        with open(path, "rb") as fh:
            raw = zstandard.ZstdDecompressor().stream_reader(fh).read()
        data = json.loads(raw)
    except (OSError, ValueError, zstandard.ZstdError) as exc:
        raise InputError(f"{path}: cannot read Cell Ontology ({exc})") from exc
    m = _CL_FILE.match(path.name)
    name = f"Cell Ontology {m.group(1) if m else path.name}"
    ancestors = {t: list(rec.get("ancestors", {})) for t, rec in data.items()}
    labels = {t: rec.get("label", t) for t, rec in data.items()}
    deprecated = [t for t, rec in data.items() if rec.get("deprecated")]
    return Ontology(ancestors, labels=labels, name=name, deprecated=deprecated)
