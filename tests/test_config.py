"""The configuration: schema defaults, semantic checks, and the run table it expands to."""

import copy
from pathlib import Path

import pytest
import yaml

from cnnopt import config as cnnconfig
from cnnopt.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def study():
    with open(ROOT / "config" / "config.yaml") as fh:
        return yaml.safe_load(fh)


def test_default_config_expands_to_the_papers_grid():
    cfg = cnnconfig.validate(study())
    runs = cnnconfig.expand_runs(cfg)
    roles = {}
    for spec in runs.values():
        roles.setdefault(spec["role"], set()).add(spec["optimizer"])
    assert roles["baseline"] == {"adam"}
    assert roles["initial"] == roles["final"] == {"adam", "sgd", "rmsprop", "adamax"}
    assert len([s for s in runs.values() if s["role"] == "ablation"]) == 5
    base = runs["adam-baseline-s0"]
    assert base["model"]["architecture"] == "tutorial" and base["epochs"] == 10


def test_final_runs_carry_each_optimizers_key_adjustments():
    runs = cnnconfig.expand_runs(cnnconfig.validate(study()))
    assert runs["adam-final-s0"]["model"]["batch_norm"] is True
    assert runs["sgd-final-s0"]["model"]["batch_norm"] is False
    assert runs["sgd-final-s0"]["optimizer_config"]["momentum"] > 0
    assert runs["sgd-initial-s0"]["optimizer_config"]["momentum"] == 0
    assert runs["adamax-final-s0"]["schedule"] == {"type": "constant"}
    assert runs["rmsprop-final-s0"]["schedule"]["type"] == "exponential"
    assert "Momentum" in runs["sgd-final-s0"]["key_adjustments"]


def test_defaults_fill_in_what_a_minimal_config_leaves_out():
    cfg = cnnconfig.validate({
        "optimizers": {"adam": {}},
        "variants": {"v": {"role": "initial"}},
        "grid": [{"optimizers": ["adam"], "variants": ["v"]}],
    })
    assert cfg["seeds"] == [0] and cfg["validation_size"] == 5000
    assert cfg["data_source"].startswith("https://")
    spec = cnnconfig.expand_runs(cfg)["adam-v-s0"]
    assert spec["model"]["filters"] == [32, 64, 128]
    assert spec["epochs"] == 10 and spec["schedule"] == {"type": "constant"}


def test_seeds_multiply_runs():
    cfg = study()
    cfg["seeds"] = [0, 1, 2]
    runs = cnnconfig.expand_runs(cnnconfig.validate(cfg))
    assert {"adam-final-s0", "adam-final-s1", "adam-final-s2"} <= set(runs)
    assert len(runs) == 3 * len(cnnconfig.expand_runs(cnnconfig.validate(study())))


def test_editing_one_optimizer_changes_only_its_runs():
    before = cnnconfig.expand_runs(cnnconfig.validate(study()))
    cfg = study()
    cfg["optimizers"]["rmsprop"]["rho"] = 0.8
    after = cnnconfig.expand_runs(cnnconfig.validate(cfg))
    changed = {rid for rid in before if before[rid] != after[rid]}
    assert changed == {"rmsprop-initial-s0"}  # the final run overrides rho itself


BAD = [
    (lambda c: c.update(bogus=1), "bogus"),
    (lambda c: c["grid"][1]["optimizers"].append("adagrad"), "adagrad"),
    (lambda c: c["grid"][0]["variants"].append("nope"), "nope"),
    (lambda c: c["optimizers"]["adam"].update(learning_rate=-0.1), "optimizers/adam/learning_rate"),
    (lambda c: c["optimizers"]["adam"].update(learning_rate=0), "optimizers/adam/learning_rate"),
    (lambda c: c["optimizers"]["adam"].update(learning_rate="fast"), "optimizers/adam/learning_rate"),
    (lambda c: c["optimizers"]["adam"].update(momentum=0.9), "adam takes no momentum"),
    (lambda c: c["defaults"].update(epochs=0), "defaults/epochs"),
    (lambda c: c["defaults"].update(batch_size=-5), "defaults/batch_size"),
    (lambda c: c["variants"]["final"]["schedule"].update(decay_rate=1.5), "decay_rate"),
    (lambda c: c["variants"]["final"]["schedule"].update(decay_rate=0), "decay_rate"),
    (lambda c: c.update(grid=[]), "grid"),
    (lambda c: c.update(seeds=[]), "seeds"),
    (lambda c: c.update(seeds=[1, 1]), "seeds"),
    (lambda c: c["grid"].append({"optimizers": ["adam"], "variants": ["baseline"]}),
     "adam-baseline-s0"),
    (lambda c: c["variants"].update({"Bad-Name": {"role": "extra"}}), "Bad-Name"),
    (lambda c: c["variants"]["final"]["per_optimizer"]["sgd"]["optimizer"].update(rho=0.9),
     "sgd takes no rho"),
    (lambda c: c.update(data_checksum="md5:xyz"), "data_checksum"),
]


@pytest.mark.parametrize("edit,needle", BAD, ids=[n for _, n in BAD])
def test_bad_config_gives_one_line_naming_the_key(edit, needle):
    cfg = study()
    edit(cfg)
    with pytest.raises(ConfigError) as info:
        cnnconfig.validate(cfg)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_validate_does_not_modify_its_argument():
    cfg = study()
    frozen = copy.deepcopy(cfg)
    cnnconfig.validate(cfg)
    assert cfg == frozen


def test_load_reports_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        cnnconfig.load(tmp_path / "absent.yaml")


def test_strings_from_the_command_line_get_the_schemas_types():
    # snakemake --config seeds=[0,1] variants="{final: {epochs: 3}}" passes nested strings
    cfg = study()
    cfg["seeds"] = ["0", "1"]
    cfg["variants"]["final"]["epochs"] = "3"
    cfg["optimizers"]["sgd"]["nesterov"] = "true"
    cfg["optimizers"]["rmsprop"]["rho"] = "0.8"
    cfg["variants"]["final"]["label"] = "12"
    out = cnnconfig.validate(cfg)
    assert out["seeds"] == [0, 1] and out["variants"]["final"]["epochs"] == 3
    assert out["optimizers"]["sgd"]["nesterov"] is True
    assert out["optimizers"]["rmsprop"]["rho"] == 0.8
    assert out["variants"]["final"]["label"] == "12"  # a string where a string belongs
    cfg["seeds"] = ["zero"]
    with pytest.raises(ConfigError, match="seeds/0"):
        cnnconfig.validate(cfg)
