"""The verdicts, the claim families and the defaults of the config's ``verdicts`` block.

The defaults equal the schema's (``workflow/schemas/config.schema.yaml``; a test compares
them), so the library judges as the workflow does when called without a config.
"""

from __future__ import annotations

REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
CONTRADICTED, INCONCLUSIVE, UNTESTED = "contradicted", "inconclusive", "untested"
#: Every verdict, in the order the report explains them.
VERDICTS = (REPRODUCED, NOT_REPRODUCED, CONTRADICTED, INCONCLUSIVE, UNTESTED)
#: The kinds of claim: a number the paper reports, A beats B, each of A beats each of B.
KINDS = ("value", "greater", "top")
#: The families within which Holm's correction runs, in the report's order.
FAMILIES = ("values", "adjustments", "ingredients", "ranking", "speed", "curves")

DEFAULT_RULES = {
    "confidence": 0.95,
    "margin": 2.0,
    "val_target": 70.0,
    "rising_epochs": 3,
    "rising_points": 0.5,
    "strata": {"first_cycle": ["baseline", "initial"], "adjusted": ["final", "ablation"]},
    "best_model_roles": ["final", "ablation"],
    "paper_epochs": {"baseline": 10, "initial": 10, "final": 45, "ablation": 45},
    "power": 0.8,
    "max_seeds": 50,
    "calibration": {"studies": 400, "seed": 0, "effects": [1.0, 2.0, 5.0]},
}


def merged(rules: dict | None) -> dict:
    """``rules`` (the config's verdicts block, possibly partial) over the defaults."""
    out = dict(DEFAULT_RULES)
    for key, value in (rules or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "strata" \
                and key != "paper_epochs":
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
