"""One registry mechanism for every plug-in kind: embeddings, predictors, index backends, voters.

A plug-in is registered by name with the dotted path of the object that
implements it (``"package.module"`` for a module, ``"package.module:attr"``
for an attribute of one). Nothing is imported until a name is looked up, so
that heavy peer tools (torch, scvi-tools, graph libraries) are loaded only by
the jobs that use them. An unknown name, or one whose package cannot be
imported, is an :class:`~cellquery.errors.InputError` that names the config
key and lists the known names.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from cellquery.errors import InputError


class Registry(Mapping):
    """Plug-in name -> implementing object, imported on first use.

    ``kind`` names the plug-ins in error messages (e.g. ``"index backend"``),
    ``key`` the config key that selects them (e.g. ``"indexes.<name>.backend"``).
    """

    def __init__(self, kind: str, key: str, entries: dict[str, str]):
        self.kind = kind
        self.key = key
        self._entries = dict(entries)
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._entries:
            raise InputError(f"config: {self.key}: unknown {self.kind} {name!r} (known: {', '.join(self._entries) or 'none'})")
        if name not in self._loaded:
            module, _, attr = self._entries[name].partition(":")
            try:
                loaded = importlib.import_module(module)
            except ImportError as err:
                raise InputError(f"config: {self.key}: {self.kind} {name!r} cannot be imported ({err})") from err
            self._loaded[name] = getattr(loaded, attr) if attr else loaded
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def skip_reason(plugin, values: str) -> str | None:
    """Why a plug-in (a module with ``REQUIRES``) cannot run on data whose values are ``values``, or None.

    A plug-in whose tool may be missing on a machine (an R package, an optional
    Python package) also defines ``runtime_missing() -> str | None``.
    """
    if "counts" in getattr(plugin, "REQUIRES", ()) and values != "counts":
        return f"needs raw counts but the group's values are {values}"
    runtime_missing = getattr(plugin, "runtime_missing", None)
    return runtime_missing() if runtime_missing is not None else None
