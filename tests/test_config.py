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


def _differences(a: dict, b: dict, prefix="") -> set[str]:
    """Dotted keys whose values differ between two nested dicts."""
    out = set()
    for key in set(a) | set(b):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out |= _differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.add(f"{prefix}{key}")
    return out


def test_default_config_expands_to_the_papers_grid_with_two_seeds():
    cfg = cnnconfig.validate(study())
    runs = cnnconfig.expand_runs(cfg)
    roles = {}
    for spec in runs.values():
        roles.setdefault(spec["role"], set()).add(spec["optimizer"])
    assert roles["baseline"] == {"adam"}
    assert roles["initial"] == roles["final"] == {"adam", "sgd", "rmsprop", "adamax"}
    assert len(cfg["seeds"]) >= 2
    assert {s["seed"] for s in runs.values()} == set(cfg["seeds"])


def test_the_baseline_follows_the_tensorflow_tutorials_protocol():
    base = cnnconfig.expand_runs(cnnconfig.validate(study()))["adam-baseline-s0"]
    assert base["model"] == {"architecture": "tutorial"} and base["epochs"] == 10
    assert base["batch_size"] == 32 and base["validation_size"] == 0  # all 50,000; test validates


# Each twin differs from the final run of its optimizer in one ingredient and nothing else.
TWINS = {
    ("adam", "final_no_schedule"): {"schedule.type", "schedule.decay_rate", "schedule.decay_step",
                                    "schedule.staircase"},
    ("sgd", "final_no_momentum"): {"optimizer_config.momentum"},
    ("adam", "final_no_dropout"): {"model.dropout", "model.conv_dropout"},
    ("adam", "final_no_batchnorm"): {"model.batch_norm"},
    ("rmsprop", "final_default_decay"): {"optimizer_config.rho"},
    ("adamax", "final_default_rate"): {"optimizer_config.learning_rate"},
}


@pytest.mark.parametrize("optimizer,variant", sorted(TWINS))
def test_each_twin_differs_from_its_final_run_in_one_ingredient(optimizer, variant):
    runs = cnnconfig.expand_runs(cnnconfig.validate(study()))
    twin, final = runs[f"{optimizer}-{variant}-s0"], runs[f"{optimizer}-final-s0"]
    ignored = {"run_id", "variant", "role", "label"}
    assert _differences(twin, final) - ignored == TWINS[(optimizer, variant)]


def paper_study():
    with open(ROOT / "config" / "paper.yaml") as fh:
        return cnnconfig.deep_merge(study(), yaml.safe_load(fh))  # as --configfile layers it


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adamax"])
def test_the_papers_scale_has_a_dropout_twin_for_every_final_recipe(optimizer):
    runs = cnnconfig.expand_runs(cnnconfig.validate(paper_study()))
    twin, final = runs[f"{optimizer}-final_no_dropout-s0"], runs[f"{optimizer}-final-s0"]
    assert _differences(twin, final) - {"run_id", "variant", "role", "label"} == \
        {"model.dropout", "model.conv_dropout"}


def test_the_papers_scale_plans_every_arm_every_claim_reads():
    from cnnopt.judge import claims as judge_claims

    runs = cnnconfig.expand_runs(cnnconfig.validate(paper_study()))
    planned = {f"{s['optimizer']}/{s['variant']}" for s in runs.values()}
    needed = {arm for c in judge_claims.load_claims() for arm in judge_claims.arms(c)}
    assert needed <= planned, sorted(needed - planned)
    assert {s["seed"] for s in runs.values()} == {0, 1, 2}
    # the default study leaves out only the dropout twins of SGD, RMSprop and Adamax
    default = {f"{s['optimizer']}/{s['variant']}" for s in
               cnnconfig.expand_runs(cnnconfig.validate(study())).values()}
    assert needed - default == {"sgd/final_no_dropout", "rmsprop/final_no_dropout",
                                "adamax/final_no_dropout"}


def test_the_verdict_defaults_are_the_schemas():
    from cnnopt.judge.rules import DEFAULT_RULES

    minimal = {k: v for k, v in study().items() if k != "verdicts"}
    assert cnnconfig.validate(minimal)["verdicts"] == DEFAULT_RULES
    assert cnnconfig.validate(study())["verdicts"] == DEFAULT_RULES  # config.yaml states them


def test_every_final_recipe_has_a_twin_without_its_schedule():
    runs = cnnconfig.expand_runs(cnnconfig.validate(study()))
    for opt in ("adam", "sgd", "rmsprop", "adamax"):
        assert runs[f"{opt}-final-s0"]["schedule"]["type"] == "exponential"
        assert runs[f"{opt}-final-s0"]["schedule"]["staircase"] is True  # the paper's formula
        assert runs[f"{opt}-final_no_schedule-s0"]["schedule"] == {"type": "constant"}


def test_final_runs_carry_each_optimizers_key_adjustments():
    runs = cnnconfig.expand_runs(cnnconfig.validate(study()))
    assert runs["adam-final-s0"]["model"]["batch_norm"] is True
    assert runs["sgd-final-s0"]["model"]["batch_norm"] is False
    assert runs["sgd-final-s0"]["optimizer_config"]["momentum"] > 0
    assert runs["sgd-initial-s0"]["optimizer_config"]["momentum"] == 0
    assert "Momentum" in runs["sgd-final-s0"]["key_adjustments"]


@pytest.mark.parametrize("base,message", [("nowhere", "unknown variant 'nowhere'"),
                                           ("loop", "circular")])
def test_a_bad_base_variant_is_refused_in_one_line(base, message):
    cfg = study()
    cfg["variants"]["loop"] = {"role": "extra", "base": "final_no_schedule"}
    cfg["variants"]["final_no_schedule"]["base"] = base
    with pytest.raises(ConfigError, match=message) as err:
        cnnconfig.validate(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("key", ["max_train_images", "max_test_images"])
def test_a_subset_smaller_than_the_class_count_is_refused(key):
    cfg = study()
    cfg[key] = 5
    with pytest.raises(ConfigError, match=f"{key} = 5: fewer images than the 10 classes"):
        cnnconfig.validate(cfg)
    cfg[key] = 10
    assert cnnconfig.validate(cfg)[key] == 10


def test_the_old_patience_key_is_refused_with_a_hint():
    cfg = study()
    cfg["patience"] = 1.0
    with pytest.raises(ConfigError, match="renamed: use convergence_tolerance"):
        cnnconfig.validate(cfg)


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
    default = cnnconfig.validate(study())
    assert len(runs) == 3 * len(cnnconfig.expand_runs(default)) // len(default["seeds"])


def test_editing_one_optimizer_changes_only_its_runs():
    before = cnnconfig.expand_runs(cnnconfig.validate(study()))
    cfg = study()
    cfg["optimizers"]["rmsprop"]["rho"] = 0.8
    after = cnnconfig.expand_runs(cnnconfig.validate(cfg))
    changed = {rid for rid in before if before[rid] != after[rid]}
    # the final run and its twin override rho themselves
    assert changed == {f"rmsprop-initial-s{seed}" for seed in cfg["seeds"]}


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
