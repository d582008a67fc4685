"""Checks of a configuration beyond its JSON schema: names that refer to each other.

The schema (config/schema.yaml) checks shapes and types; this module checks
that groups name declared datasets, that methods, indexes and voters exist,
that a group's datasets declare one kind of values, that sources are https://
or file:// URLs with a checksum or files that exist, and that a reference and
query taken from one source are the two parts of one split. Errors name the
key. What needs the data is checked by :mod:`cellquery.validate`.
"""

from __future__ import annotations

import os

from cellquery.errors import InputError


def group_values(config: dict, group: str) -> str:
    """The kind of values (counts or log-normalised) of a group's datasets."""
    from cellquery.given import group_embedding_key

    if group_embedding_key(config, group):
        return "embedding"
    spec = config["groups"][group]
    kinds = {config["datasets"][d].get("values") for d in spec["reference"] + spec["query"]}
    if len(kinds) != 1:
        raise InputError(
            f"config: groups.{group}: its datasets declare different values {sorted(kinds)}; declare one kind for all "
            "of a group's datasets (log1p-normalise the count data and declare log-normalised)"
        )
    return kinds.pop()


def method_kind(config: dict, method: str) -> str:
    """``embedding`` (feeds the index and transfer stages) or ``predictor`` (a tool that predicts itself)."""
    spec = config["methods"][method]
    kinds = [k for k in ("embedding", "predictor") if k in spec]
    if len(kinds) != 1:
        raise InputError(f"config: methods.{method}: give exactly one of 'embedding' or 'predictor'")
    return kinds[0]


def method_plugins(kind: str):
    """The registry of a method kind: embeddings or predictors."""
    if kind == "embedding":
        from cellquery.embed import EMBEDDINGS

        return EMBEDDINGS
    from cellquery.predictors import PREDICTORS

    return PREDICTORS


def method_skip_reason(config: dict, group: str, method: str) -> str | None:
    """Why ``method`` cannot run on ``group`` (e.g. it needs counts), or None."""
    from cellquery.given import group_embedding_key, is_given
    from cellquery.registry import skip_reason

    if is_given(method):
        return None
    key = group_embedding_key(config, group)
    if key:
        return f"needs expression but the group gives an embedding only (obsm {key}; method given-{key} runs on it)"
    kind = method_kind(config, method)
    plugin = method_plugins(kind)[config["methods"][method][kind]]
    if "spatial" in getattr(plugin, "REQUIRES", ()) and not config["groups"][group].get("spatial"):
        return "needs spatial coordinates but the group has none (groups.<name>.spatial: {section_key, radius})"
    return skip_reason(plugin, group_values(config, group))


def check_config(config: dict) -> None:
    """Raise :class:`InputError` naming the first key that refers to something undeclared."""
    from cellquery.given import GIVEN_PREFIX, is_given
    from cellquery.index import BACKENDS
    from cellquery.settings import ConformalSettings
    from cellquery.transfer import VOTERS

    for dataset, spec in config["datasets"].items():
        if "values" not in spec and not spec.get("embedding"):
            raise InputError(
                f"config: datasets.{dataset}.values: required (counts or log-normalised), or give "
                "embedding: {obsm_key: <key>} for a dataset of precomputed embeddings"
            )
    for group, spec in config["groups"].items():
        for role in ("reference", "query"):
            for dataset in spec[role]:
                if dataset not in config["datasets"]:
                    raise InputError(
                        f"config: groups.{group}.{role}: unknown dataset {dataset!r} (declared: {', '.join(config['datasets'])})"
                    )
        group_values(config, group)
        for key in ("methods", "indexes", "transfers"):  # a group's own subset of the runs
            unknown = [name for name in spec.get(key) or [] if name not in config[key]]
            if unknown:
                raise InputError(f"config: groups.{group}.{key}: unknown {unknown[0]!r} (declared: {', '.join(config[key])})")
    for method, spec in config["methods"].items():
        if is_given(method):
            raise InputError(f"config: methods.{method}: names starting with {GIVEN_PREFIX!r} are reserved for given embeddings; rename it")
        kind = method_kind(config, method)
        known = method_plugins(kind)
        if spec[kind] not in known:
            raise InputError(f"config: methods.{method}.{kind}: unknown {spec[kind]!r} (known: {', '.join(known)})")
        for key in ("indexes", "transfers"):
            for name in spec.get(key, []):
                if kind == "predictor":
                    raise InputError(f"config: methods.{method}.{key}: a predictor uses its own search and transfer")
                if name not in config[key]:
                    raise InputError(f"config: methods.{method}.{key}: unknown {name!r} (known: {', '.join(config[key])})")
    for name in list(config["indexes"]) + list(config["transfers"]):
        if name == "native":
            raise InputError(f"config: 'native' is reserved for the index and transfer of predictor methods; rename {name!r}")
    for index, spec in config["indexes"].items():
        if spec["backend"] not in BACKENDS:
            raise InputError(f"config: indexes.{index}.backend: unknown {spec['backend']!r} (known: {', '.join(BACKENDS)})")
    for transfer, spec in config["transfers"].items():
        if spec["voter"] not in VOTERS:
            raise InputError(f"config: transfers.{transfer}.voter: unknown {spec['voter']!r} (known: {', '.join(VOTERS)})")
        if "conformal" in spec and "significance" in spec:
            raise InputError(f"config: transfers.{transfer}: conformal and significance exclude each other; keep one")
        conformal = ConformalSettings.from_config(spec.get("conformal"))
        if conformal is not None and conformal.k > config["k"]:
            raise InputError(f"config: transfers.{transfer}.conformal.k = {conformal.k} exceeds k = {config['k']} (hits per cell)")
    if config.get("conformal_folds") == 1:
        raise InputError("config: conformal_folds = 1: held-out calibration needs at least 2 folds (0: in-sample only)")
    for dataset, spec in config["datasets"].items():
        check_source(dataset, spec)
    for group, spec in config["groups"].items():
        check_split_parts(config, group)


def check_source(dataset: str, spec: dict) -> None:
    """A dataset's source: https:// or file:// URLs with a sha256, a local file that exists, or a built-in source."""
    source = str(spec["source"])
    field = f"config: datasets.{dataset}"
    if source.startswith("http://"):
        raise InputError(f"{field}.source: http:// URLs are not fetched (no transport security); use https:// or a local file")
    if "://" in source:
        if not source.startswith(("https://", "file://")):
            raise InputError(f"{field}.source: only https:// and file:// URLs are supported, got {source!r}")
        if "sha256" not in spec:
            raise InputError(
                f"{field}.sha256: required for a URL source (sha256sum of the file, or first-use to record the first "
                "download's digest in config/checksums.lock and verify later downloads against it)"
            )
    elif str(spec.get("sha256")) == "first-use":
        raise InputError(f"{field}.sha256: first-use is for URL sources; give the sha256sum of the local file or none")
    elif source == "simulate":
        if "simulate" not in spec:
            raise InputError(f"{field}.simulate: parameters required for source simulate")
    elif source == "simulate_spatial":
        if "cells_per_section" not in (spec.get("simulate_spatial") or {}):
            raise InputError(f"{field}.simulate_spatial: parameters (at least cells_per_section) required for source simulate_spatial")
    elif source != "scanpy:pbmc68k_reduced" and not os.path.exists(source):
        raise InputError(
            f"{field}.source: file {source!r} not found (relative paths start in the working directory {os.getcwd()}); "
            "check the path"
        )


def _same_source(a: dict, b: dict) -> bool:
    return a["source"] == b["source"] and a.get("simulate") == b.get("simulate") and a.get("simulate_spatial") == b.get("simulate_spatial")


def check_split_parts(config: dict, group: str) -> None:
    """A group whose reference and query are parts of one split takes complementary parts, never the same cells.

    Two datasets with one source (and one simulation) are the two parts of a
    split only when both declare a ``split`` with the same ``label_key``,
    ``fraction`` and ``seed`` and different ``part``: then no cell is in both,
    for every seed of the run.
    """
    spec = config["groups"][group]
    for ref in spec["reference"]:
        for qry in spec["query"]:
            a, b = config["datasets"][ref], config["datasets"][qry]
            if ref == qry:
                raise InputError(f"config: groups.{group}: dataset {ref!r} is both reference and query; split it into two datasets")
            if not _same_source(a, b):
                continue
            sa, sb = a.get("split"), b.get("split")
            if not sa or not sb:
                raise InputError(
                    f"config: groups.{group}: reference {ref!r} and query {qry!r} read the same source without a split of both; "
                    "give both a split (parts 1 and 2)"
                )
            shape = ("label_key", "fraction", "seed")
            if any(sa[key] != sb[key] for key in shape):
                raise InputError(
                    f"config: groups.{group}: reference {ref!r} and query {qry!r} split one source differently "
                    "(label_key, fraction and seed must agree); give both the same split with parts 1 and 2"
                )
            if sa["part"] == sb["part"]:
                raise InputError(
                    f"config: groups.{group}: reference {ref!r} and query {qry!r} take the same cells "
                    f"(split part {sa['part']} of one source); give the query the other part"
                )
