"""The verdicts, the claim families and the defaults of the config's ``verdicts`` block.

The defaults are read from the schema (``workflow/schemas/config.schema.yaml``), so the
library judges as the workflow does when called without a config.
"""

from __future__ import annotations

import copy

import yaml

from cnnopt.common.registry import SCHEMA_PATH

REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
CONTRADICTED, INCONCLUSIVE, UNTESTED = "contradicted", "inconclusive", "untested"
#: Every verdict, in the order the report explains them.
VERDICTS = (REPRODUCED, NOT_REPRODUCED, CONTRADICTED, INCONCLUSIVE, UNTESTED)
#: The kinds of claim: a number the paper reports, A beats B, each of A beats each of B.
KINDS = ("value", "greater", "top")
#: The families within which Holm's correction runs, in the report's order.
FAMILIES = ("values", "adjustments", "ingredients", "ranking", "speed", "curves")

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
DEFAULT_RULES = _read_defaults()


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
