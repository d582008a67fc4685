"""Typed settings, built once from the config and passed to the library's entry points.

The config is checked by its JSON schema (config/schema.yaml) and by
:func:`cellquery.config.check_config`; the dataclasses here give its entries
names and defaults, so that library functions take ``group.label_key`` instead
of ``group["label_key"]`` and a default is written in one place only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from cellquery.errors import InputError

# Model j of a run with seed s (consensus significance trains several models of
# one method, Cell BLAST's multi-model rule) is seeded s + MODEL_SEED_STRIDE * j;
# model 0 is the run's own model. The stride keeps models of nearby seeds apart.
MODEL_SEED_STRIDE = 1000

# Config value of an acceptance-rule setting left to validation inside the
# reference (cellquery.transfer.tuning): p_cutoff and shrinkage of a
# significance rule, distance_quantile of a distance cut-off.
AUTO = "auto"


def model_seed(seed: int, model: int) -> int:
    """The random seed of model ``model`` of the run with seed ``seed``."""
    return int(seed) + MODEL_SEED_STRIDE * int(model)


@dataclass(frozen=True)
class GroupSettings:
    """A dataset group's annotation keys (config ``groups.<name>``)."""

    label_key: str
    batch_keys: tuple[str, ...] = ()
    ontology_key: str | None = None
    continuous_keys: tuple[str, ...] = ()
    expected: str | None = None
    # each seed keeps these label-stratified fractions of the reference and query (cellquery.resample)
    reference_fraction: float = 1.0
    query_fraction: float = 1.0

    @classmethod
    def from_config(cls, spec: Mapping) -> "GroupSettings":
        resample = spec.get("resample") or {}
        return cls(
            label_key=spec["label_key"],
            batch_keys=tuple(spec.get("batch_keys") or ()),
            ontology_key=spec.get("ontology_key"),
            continuous_keys=tuple(spec.get("continuous_keys") or ()),
            expected=spec.get("expected"),
            reference_fraction=resample.get("reference_fraction", 1.0),
            query_fraction=resample.get("query_fraction", 1.0),
        )

    @property
    def batch_key(self) -> str | None:
        """The first batch key (used for per-batch HVG and batch-aware models), or None."""
        return self.batch_keys[0] if self.batch_keys else None


@dataclass(frozen=True)
class SignificanceSettings:
    """Hits count by empirical P-value (config ``transfers.<name>.significance``)."""

    p_cutoff: float | str = 0.05  # or AUTO
    models: int = 1
    shrinkage: float | str = 0.0  # or AUTO

    @classmethod
    def from_config(cls, spec: Mapping | None) -> "SignificanceSettings | None":
        return cls(**spec) if spec else None


@dataclass(frozen=True)
class ConformalSettings:
    """Reject by class-conditional conformal P-value (config ``transfers.<name>.conformal``).

    ``alpha`` is the nominal false-rejection rate of cells of reference types
    (a level the user states, never tuned); ``k`` the rank of the own-type
    neighbour whose distance is the nonconformity (cellquery.transfer.conformal).
    """

    alpha: float = 0.05
    k: int = 5

    @classmethod
    def from_config(cls, spec: Mapping | None) -> "ConformalSettings | None":
        return cls(**spec) if spec is not None else None


@dataclass(frozen=True)
class TransferSettings:
    """One transfer of the config (``transfers.<name>``): a voter and the rule that accepts hits."""

    voter: str = "majority"
    params: Mapping = field(default_factory=dict)
    min_hits: int = 2
    min_fraction: float = 0.5
    distance_quantile: float | str | None = 0.95  # or AUTO
    significance: SignificanceSettings | None = None
    conformal: ConformalSettings | None = None
    report_as: str | None = None

    @classmethod
    def from_config(cls, spec: Mapping) -> "TransferSettings":
        values = dict(spec)
        values["params"] = dict(values.get("params") or {})
        values["significance"] = SignificanceSettings.from_config(values.get("significance"))
        values["conformal"] = ConformalSettings.from_config(values.get("conformal"))
        if values["significance"] is not None and values["conformal"] is not None:
            raise InputError("config: transfers: a transfer has either significance or conformal, not both")
        return cls(**values)

    @property
    def n_models(self) -> int:
        """How many models' P-values the rule combines (1 without significance)."""
        return self.significance.models if self.significance else 1

    @property
    def auto_keys(self) -> tuple[str, ...]:
        """The settings of the acceptance rule in use that the config leaves to tuning (value ``auto``).

        With significance: ``p_cutoff`` and/or ``shrinkage`` (a
        ``distance_quantile`` is not used then); without: ``distance_quantile``.
        """
        if self.significance is not None:
            return tuple(key for key in ("p_cutoff", "shrinkage") if getattr(self.significance, key) == AUTO)
        if self.conformal is not None:
            return ()
        return ("distance_quantile",) if self.distance_quantile == AUTO else ()

    @property
    def needs_tuning(self) -> bool:
        """Whether some setting is ``auto`` and must be chosen before the transfer can run."""
        return bool(self.auto_keys)

    def resolved(self, values: Mapping[str, float]) -> "TransferSettings":
        """These settings with every ``auto`` value replaced by ``values[key]``; explicit values are kept."""
        missing = [key for key in self.auto_keys if key not in values]
        if missing:
            raise InputError(f"transfer: no tuned value for the auto setting(s) {', '.join(missing)}")
        chosen = {key: float(values[key]) for key in self.auto_keys}
        if self.significance is not None:
            return replace(self, significance=replace(self.significance, **chosen))
        return replace(self, **chosen)
