"""The decision rules of the claims table, as one typed object.

``Rules.of`` builds it once from the config's ``verdicts`` block (validated or not: the schema's
defaults fill in what the block leaves out) and every judge, table and report section takes
it from there: nothing else merges the block with its defaults.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from types import MappingProxyType

import yaml

from cnnopt.common.errors import CnnoptError
from cnnopt.common.registry import SCHEMA_PATH


def schema_defaults(node: dict):
    """What validating an empty block against schema ``node`` fills in: its default, with
    each property's own default (recursively) underneath."""
    props = {k: schema_defaults(v) for k, v in node.get("properties", {}).items()
             if "default" in v}
    default = copy.deepcopy(node.get("default"))
    if isinstance(default, dict) or (default is None and props):
        return props | (default or {})
    return default


def _read_defaults() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return schema_defaults(yaml.safe_load(fh)["properties"]["verdicts"])


#: The ``verdicts`` block of a config that sets none of it (the schema's defaults).
DEFAULTS = MappingProxyType(_read_defaults())


@dataclass(frozen=True)
class Calibration:
    """``verdicts.calibration``: the simulated studies of rule calibrate (section 2.3)."""

    studies: int
    seed: int
    effects: tuple[float, ...]
    sds: tuple[float, ...]
    seeds: tuple[int, ...]
    cases: tuple[str, ...]


@dataclass(frozen=True)
class Moderation:
    """``verdicts.moderation``: how each arm's variance is moderated toward its neighbours'
    (``judge.model``)."""

    min_arms: int
    cautious: bool
    outlier: float
    full_weight: float


@dataclass(frozen=True)
class Sequential:
    """``verdicts.sequential``: the looks of the sequential design (``judge.sequential``);
    off when ``looks`` is empty."""

    looks: tuple[int, ...]
    max_seeds: int | None
    budget_trainings: int | None
    spending: str
    studies: int

    @property
    def on(self) -> bool:
        return bool(self.looks)

    @property
    def cap(self) -> int:
        """The most seeds to decide a claim may need to grow (``max_seeds``, else the last look)."""
        return self.max_seeds if self.max_seeds is not None else max(self.looks, default=2)

    @classmethod
    def of(cls, block: dict) -> Sequential:
        known = {f.name for f in fields(cls)}
        if set(block) - known:
            raise CnnoptError(f"verdicts.sequential: unknown key(s) "
                              f"{', '.join(sorted(set(block) - known))}")
        looks = tuple(int(n) for n in block.get("looks") or ())
        if any(b <= a for a, b in zip(looks, looks[1:], strict=False)):
            raise CnnoptError(f"verdicts.sequential.looks: the seeds per look must increase "
                              f"(got {list(looks)})")
        if looks and min(looks) < 2:
            raise CnnoptError("verdicts.sequential.looks: every look needs at least 2 seeds per arm")
        max_seeds = block.get("max_seeds")
        if looks and max_seeds is not None and int(max_seeds) < looks[-1]:
            raise CnnoptError(f"verdicts.sequential.max_seeds = {max_seeds} is below the last "
                              f"look's {looks[-1]} seeds")
        spending = block.get("spending", "pocock")
        if spending not in ("pocock", "obrien_fleming", "split"):
            raise CnnoptError(f"verdicts.sequential.spending = {spending!r}: choose pocock, "
                              "obrien_fleming or split")
        budget = block.get("budget_trainings")
        return cls(looks=looks, max_seeds=None if max_seeds is None else int(max_seeds),
                   budget_trainings=None if budget is None else int(budget), spending=spending,
                   studies=int(block.get("studies", 200)))

    def as_block(self) -> dict:
        return {"looks": list(self.looks), "max_seeds": self.max_seeds,
                "budget_trainings": self.budget_trainings, "spending": self.spending,
                "studies": self.studies}


@dataclass(frozen=True)
class Rules:
    """``verdicts``: how each claim is judged (``config/README.md``, "Verdicts")."""

    confidence: float
    margin: float
    val_target: float
    rising_epochs: int
    rising_points: float
    strata: MappingProxyType          # stratum -> tuple of roles
    best_model_roles: tuple[str, ...]
    paper_epochs: MappingProxyType    # role -> the paper's epochs
    power: float
    max_seeds: int
    moderation: Moderation
    calibration: Calibration
    sequential: Sequential
    #: the stratum of each role (a role in none is a stratum of its own)
    _role_stratum: MappingProxyType = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        roles = {r: name for name, members in self.strata.items() for r in members}
        object.__setattr__(self, "_role_stratum", MappingProxyType(roles))

    @property
    def alpha(self) -> float:
        """The family-wise error rate of each family (Holm) and each test's level."""
        return 1 - self.confidence

    def stratum_of(self, role: str) -> str:
        return self._role_stratum.get(role, str(role))

    @classmethod
    def of(cls, block=None) -> Rules:
        """The rules of a ``verdicts`` block (a mapping, possibly partial, or None for the
        defaults); a ``Rules`` is returned as it is. An unknown key is a one-line error."""
        if isinstance(block, Rules):
            return block
        block = dict(block or {})
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(block) - known)
        if unknown:
            raise CnnoptError(f"verdicts: unknown key(s) {', '.join(unknown)} (known: "
                              f"{', '.join(sorted(known))})")
        values = dict(DEFAULTS) | block
        mod = dict(DEFAULTS["moderation"]) | dict(block.get("moderation") or {})
        mod_known = {f.name for f in fields(Moderation)}
        if set(mod) - mod_known:
            raise CnnoptError(f"verdicts.moderation: unknown key(s) "
                              f"{', '.join(sorted(set(mod) - mod_known))}")
        cal = dict(DEFAULTS["calibration"]) | dict(block.get("calibration") or {})
        cal_known = {f.name for f in fields(Calibration)}
        if set(cal) - cal_known:
            raise CnnoptError(f"verdicts.calibration: unknown key(s) "
                              f"{', '.join(sorted(set(cal) - cal_known))}")
        return cls(
            confidence=float(values["confidence"]), margin=float(values["margin"]),
            val_target=float(values["val_target"]), rising_epochs=int(values["rising_epochs"]),
            rising_points=float(values["rising_points"]),
            strata=MappingProxyType({k: tuple(v) for k, v in values["strata"].items()}),
            best_model_roles=tuple(values["best_model_roles"]),
            paper_epochs=MappingProxyType({k: int(v) for k, v in values["paper_epochs"].items()}),
            power=float(values["power"]), max_seeds=int(values["max_seeds"]),
            moderation=Moderation(min_arms=int(mod["min_arms"]), cautious=bool(mod["cautious"]),
                                  outlier=float(mod["outlier"]), full_weight=float(mod["full_weight"])),
            calibration=Calibration(
                studies=int(cal["studies"]), seed=int(cal["seed"]),
                effects=tuple(float(e) for e in cal["effects"]),
                sds=tuple(float(s) for s in cal["sds"]), seeds=tuple(int(n) for n in cal["seeds"]),
                cases=tuple(cal["cases"])),
            sequential=Sequential.of(dict(DEFAULTS["sequential"])
                                     | dict(block.get("sequential") or {})))

    def __reduce__(self):
        """Pickled as its block (mapping proxies do not pickle): worker processes get it."""
        return Rules.of, (self.as_block(),)

    def replace(self, **changes) -> Rules:
        """These rules with some keys changed (as a ``verdicts`` block would change them)."""
        return Rules.of(self.as_block() | changes)

    def as_block(self) -> dict:
        """The rules as a plain ``verdicts`` block (what the config would say)."""
        cal, mod = self.calibration, self.moderation
        return {"confidence": self.confidence, "margin": self.margin,
                "val_target": self.val_target, "rising_epochs": self.rising_epochs,
                "rising_points": self.rising_points,
                "strata": {k: list(v) for k, v in self.strata.items()},
                "best_model_roles": list(self.best_model_roles),
                "paper_epochs": dict(self.paper_epochs), "power": self.power,
                "max_seeds": self.max_seeds,
                "moderation": {"min_arms": mod.min_arms, "cautious": mod.cautious,
                               "outlier": mod.outlier, "full_weight": mod.full_weight},
                "calibration": {"studies": cal.studies, "seed": cal.seed,
                                "effects": list(cal.effects), "sds": list(cal.sds),
                                "seeds": list(cal.seeds), "cases": list(cal.cases)},
                "sequential": self.sequential.as_block()}
