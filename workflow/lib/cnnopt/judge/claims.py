"""The paper's claims (``claims.yaml``): loaded, checked, and the runs each one reads."""

from __future__ import annotations

from importlib import resources

import yaml

from cnnopt.common.errors import CnnoptError
from cnnopt.common.paper import PAPER_ACCURACY
from cnnopt.judge.metrics import METRICS
from cnnopt.judge.verdicts import FAMILIES, KINDS

CLAIMS_FILE = "claims.yaml"
#: The keys each kind of claim needs besides id, claim, where and family.
NEEDS = {"value": ("run",), "greater": ("a", "b"), "top": ("members", "others")}


def load_claims(text: str | None = None) -> list[dict]:
    """The claims of ``claims.yaml`` (or of ``text``), checked, with their defaults filled in
    (metric accuracy, better higher, scale false)."""
    if text is None:
        text = resources.files(__package__).joinpath(CLAIMS_FILE).read_text(encoding="utf-8")
    claims = yaml.safe_load(text) or []
    seen = set()
    out = []
    for c in claims:
        cid = c.get("id")
        if c.get("kind") not in NEEDS:
            raise CnnoptError(f"claim {cid!r}: kind must be one of {', '.join(KINDS)}")
        missing = [k for k in ("id", "claim", "where", "family", *NEEDS[c["kind"]]) if k not in c]
        if missing:
            raise CnnoptError(f"claim {cid!r}: missing {', '.join(missing)}")
        if c["family"] not in FAMILIES:
            raise CnnoptError(f"claim {cid!r}: family must be one of {', '.join(FAMILIES)}")
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
