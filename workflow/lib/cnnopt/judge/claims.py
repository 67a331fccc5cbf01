"""The claims to judge: the paper's (``claims.yaml``) or a user's own file (config ``claims``),
loaded and checked, and the runs each one reads.

A claims file is a list of claims (in the families of ``verdicts.FAMILIES``), or a mapping
``{families: [...], claims: [...]}`` that declares its own families (Holm's correction runs
within each).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from cnnopt.common.errors import CnnoptError
from cnnopt.common.paper import PAPER_ACCURACY
from cnnopt.judge.metrics import METRICS
from cnnopt.judge.verdicts import FAMILIES, KINDS

CLAIMS_FILE = "claims.yaml"
#: The keys each kind of claim needs besides id, claim, where and family.
NEEDS = {"value": ("run",), "greater": ("a", "b"), "top": ("members", "others")}


def read_claims(path) -> list[dict]:
    """The claims of the file at ``path`` (``load_claims``); a missing or unreadable file is a
    one-line error naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CnnoptError(f"claims file {path}: cannot read it ({' '.join(str(err).split())})") from None
    try:
        return load_claims(text)
    except CnnoptError as err:
        raise CnnoptError(f"claims file {path}: {err}") from None


def load_claims(text: str | None = None) -> list[dict]:
    """The claims of ``claims.yaml`` (or of ``text``), checked, with their defaults filled in
    (metric accuracy, better higher, scale false)."""
    if text is None:
        text = resources.files(__package__).joinpath(CLAIMS_FILE).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or []
    except yaml.YAMLError as err:
        raise CnnoptError(f"not YAML: {' '.join(str(err).split())}") from None
    families = FAMILIES
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"families", "claims"})
        if unknown:
            raise CnnoptError(f"unknown key(s) {', '.join(map(str, unknown))} (a claims file is a "
                              "list of claims, or families: and claims:)")
        families = data.get("families") or FAMILIES
        if not (isinstance(families, list) and all(isinstance(f, str) and f for f in families)):
            raise CnnoptError("families must be a list of names")
        data = data.get("claims") or []
    if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
        raise CnnoptError("the claims must be a list of mappings (id, claim, where, family, kind, ...)")
    if not data:
        raise CnnoptError("no claims")
    seen = set()
    out = []
    for c in data:
        cid = c.get("id")
        if c.get("kind") not in NEEDS:
            raise CnnoptError(f"claim {cid!r}: kind must be one of {', '.join(KINDS)}")
        missing = [k for k in ("id", "claim", "where", "family", *NEEDS[c["kind"]]) if k not in c]
        if missing:
            raise CnnoptError(f"claim {cid!r}: missing {', '.join(missing)}")
        if c["family"] not in families:
            raise CnnoptError(f"claim {cid!r}: family {c['family']!r} is not declared "
                              f"(families: {', '.join(families)})")
        c = with_defaults(c)
        if c["metric"] not in METRICS:
            raise CnnoptError(f"claim {cid!r}: metric must be one of {', '.join(METRICS)}")
        if c["better"] not in ("higher", "lower"):
            raise CnnoptError(f"claim {cid!r}: better must be higher or lower")
        if c["kind"] == "value" and c["metric"] != "accuracy":
            raise CnnoptError(f"claim {cid!r}: a value claim reports an accuracy")
        if c["kind"] == "value" and "paper" not in c:
            if c["run"] not in PAPER_ACCURACY:
                raise CnnoptError(f"claim {cid!r}: the paper reports no number for {c['run']}; "
                                  "give it as paper")
            c["paper"] = PAPER_ACCURACY[c["run"]]
        c["claim"] = _with_numbers(c)
        if cid in seen:
            raise CnnoptError(f"claim id {cid!r} appears twice")
        seen.add(cid)
        out.append(c)
    return out


def _with_numbers(claim: dict) -> str:
    """The claim's text with the paper's numbers filled in ({paper}; {a} and {b})."""
    numbers = {k: PAPER_ACCURACY[claim[k]] for k in ("a", "b") if claim.get(k) in PAPER_ACCURACY}
    if "paper" in claim:
        numbers["paper"] = claim["paper"]
    try:
        return claim["claim"].format_map({k: f"{v:.2f}" for k, v in numbers.items()})
    except (KeyError, ValueError, IndexError) as exc:
        raise CnnoptError(f"claim {claim['id']!r}: its text names a number the paper does not "
                          f"give here ({exc})") from None


def check_arms(claims: list[dict], grid_arms, source=None) -> None:
    """Every arm a claim reads is one of ``grid_arms`` (optimizer/variant of the study's runs):
    a one-line error names the first that is not (and ``source``, the claims file)."""
    known = set(grid_arms)
    where = f"claims file {source}: " if source else ""
    for c in claims:
        for arm in arms(c):
            if arm not in known:
                raise CnnoptError(f"{where}claim {c['id']!r} reads {arm!r}, which the grid does not run "
                                  f"(its arms: {', '.join(sorted(known))})")


def with_defaults(claim: dict) -> dict:
    """``claim`` with the optional keys filled in: metric accuracy, better higher, scale
    false, family "ranking" (the tuning study's claims name none)."""
    return {"metric": "accuracy", "better": "higher", "scale": False, "family": "ranking"} | claim


def arms(claim: dict) -> list[str]:
    """Every optimizer/variant the claim reads."""
    out: list[str] = []
    for k in ("run", "a", "b", "members", "others"):
        if k in claim:
            out += claim[k] if isinstance(claim[k], list) else [claim[k]]
    return out


def pairs(claim: dict) -> list[tuple[str, str]]:
    """The comparisons a claim makes, each (arm claimed better, arm claimed worse)."""
    if claim["kind"] == "greater":
        return [(claim["a"], claim["b"])]
    if claim["kind"] == "top":
        return [(m, o) for m in claim["members"] for o in claim["others"]]
    return []
