"""A tuned run's learning rate: the one its search chose (the selection file that
``cnnopt.tuning.select`` writes). Its own small module: every training job imports it, so its
code version reruns them; the search's scheduler (``halving``, ``select``) stays out of it.
"""

from __future__ import annotations

import copy

from cnnopt.common import files
from cnnopt.common.errors import CnnoptError
from cnnopt.common.registry import TUNED


def apply_choice(spec: dict, choice_json) -> dict:
    """A tuned run's spec with the learning rate its search chose (other specs unchanged)."""
    if spec.get("role") != TUNED:
        return spec
    choice = files.read_json(choice_json)
    if (choice.get("search"), choice.get("optimizer")) != (spec["search"], spec["optimizer"]):
        raise CnnoptError(f"{choice_json} is the choice of {choice.get('optimizer')} in search "
                          f"{choice.get('search')}, not of {spec['optimizer']} in {spec['search']}")
    out = copy.deepcopy(spec)
    out["optimizer_config"]["learning_rate"] = float(choice["learning_rate"])
    out["chosen_from"] = choice["run_id"]
    return out
