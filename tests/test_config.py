"""The configuration: schema defaults, semantic checks, and the run table it expands to."""

import copy
from pathlib import Path

import pytest
import yaml

from cnnopt.common.errors import ConfigError
from cnnopt.config import grid, schema

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
    cfg = schema.validate(study())
    runs = grid.expand_runs(cfg)
    roles = {}
    for spec in runs.values():
        roles.setdefault(spec["role"], set()).add(spec["optimizer"])
    assert roles["baseline"] == {"adam"}
    assert roles["initial"] == roles["final"] == {"adam", "sgd", "rmsprop", "adamax"}
    assert len(cfg["seeds"]) >= 2
    assert {s["seed"] for s in runs.values()} == set(cfg["seeds"])


def test_the_baseline_follows_the_tensorflow_tutorials_protocol():
    base = grid.expand_runs(schema.validate(study()))["adam-baseline-s0"]
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
    runs = grid.expand_runs(schema.validate(study()))
    twin, final = runs[f"{optimizer}-{variant}-s0"], runs[f"{optimizer}-final-s0"]
    ignored = {"run_id", "variant", "role", "label"}
    assert _differences(twin, final) - ignored == TWINS[(optimizer, variant)]


def paper_study():
    with open(ROOT / "config" / "paper.yaml") as fh:
        return grid.deep_merge(study(), yaml.safe_load(fh))  # as --configfile layers it


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adamax"])
def test_the_papers_scale_has_a_dropout_twin_for_every_final_recipe(optimizer):
    runs = grid.expand_runs(schema.validate(paper_study()))
    twin, final = runs[f"{optimizer}-final_no_dropout-s0"], runs[f"{optimizer}-final-s0"]
    assert _differences(twin, final) - {"run_id", "variant", "role", "label"} == \
        {"model.dropout", "model.conv_dropout"}


def test_the_papers_scale_plans_every_arm_every_claim_reads():
    from cnnopt.judge import claims as judge_claims

    runs = grid.expand_runs(schema.validate(paper_study()))
    planned = {f"{s['optimizer']}/{s['variant']}" for s in runs.values()}
    needed = {arm for c in judge_claims.load_claims() for arm in judge_claims.arms(c)}
    assert needed <= planned, sorted(needed - planned)
    assert {s["seed"] for s in runs.values()} == {0, 1, 2}
    # the default study leaves out only the dropout twins of SGD, RMSprop and Adamax
    default = {f"{s['optimizer']}/{s['variant']}" for s in
               grid.expand_runs(schema.validate(study())).values()}
    assert needed - default == {"sgd/final_no_dropout", "rmsprop/final_no_dropout",
                                "adamax/final_no_dropout"}


def test_every_final_recipe_has_a_twin_without_its_schedule():
    runs = grid.expand_runs(schema.validate(study()))
    for opt in ("adam", "sgd", "rmsprop", "adamax"):
        assert runs[f"{opt}-final-s0"]["schedule"]["type"] == "exponential"
        assert runs[f"{opt}-final-s0"]["schedule"]["staircase"] is True  # the paper's formula
        assert runs[f"{opt}-final_no_schedule-s0"]["schedule"] == {"type": "constant"}


def test_final_runs_carry_each_optimizers_key_adjustments():
    runs = grid.expand_runs(schema.validate(study()))
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
        schema.validate(cfg)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("key", ["max_train_images", "max_test_images"])
def test_a_subset_smaller_than_the_class_count_is_refused(key):
    cfg = study()
    cfg[key] = 5
    with pytest.raises(ConfigError, match=f"{key} = 5: fewer images than the 10 classes"):
        schema.validate(cfg)
    cfg[key] = 10
    assert schema.validate(cfg)[key] == 10


def test_the_old_patience_key_is_refused_with_a_hint():
    cfg = study()
    cfg["patience"] = 1.0
    with pytest.raises(ConfigError, match="renamed: use convergence_tolerance"):
        schema.validate(cfg)


def test_defaults_fill_in_what_a_minimal_config_leaves_out():
    cfg = schema.validate({
        "optimizers": {"adam": {}},
        "variants": {"v": {"role": "initial"}},
        "grid": [{"optimizers": ["adam"], "variants": ["v"]}],
    })
    assert cfg["seeds"] == [0] and cfg["validation_size"] == 5000
    assert cfg["data_source"].startswith("https://")
    spec = grid.expand_runs(cfg)["adam-v-s0"]
    assert spec["model"]["filters"] == [32, 64, 128]
    assert spec["epochs"] == 10 and spec["schedule"] == {"type": "constant"}


def minimal(**variants) -> dict:
    """A config of one optimizer (adam) and ``variants`` (name -> what it sets), all in the grid."""
    return {"optimizers": {"adam": {}},
            "variants": {name: {"role": "extra", **v} for name, v in variants.items()},
            "grid": [{"optimizers": ["adam"], "variants": list(variants)}]}


def specs(cfg: dict, the_schema: dict | None = None) -> dict[str, dict]:
    """variant -> the adam run's spec (seed 0)."""
    runs = grid.expand_runs(schema.validate(cfg, the_schema), the_schema)
    return {spec["variant"]: spec for spec in runs.values()}


def test_a_merged_schedule_takes_the_defaults_of_its_type_from_the_schema():
    cfg = minimal(exp={"schedule": {"type": "exponential"}},
                  slow={"schedule": {"type": "exponential", "decay_rate": 0.8}},
                  # the twin writes the type again: its base's decay_rate stays (defaults fill
                  # the merged schedule, not each block)
                  twin={"base": "slow", "schedule": {"type": "exponential", "decay_step": 2}},
                  cosine={"base": "slow", "schedule": {"type": "warmup_cosine", "decay_epochs": 4}},
                  plain={"base": "slow", "schedule": {"type": "constant"}})
    got = {name: spec["schedule"] for name, spec in specs(cfg).items()}
    assert got["exp"] == {"type": "exponential", "decay_rate": 0.9, "decay_step": 1, "staircase": True}
    assert got["twin"] == {"type": "exponential", "decay_rate": 0.8, "decay_step": 2, "staircase": True}
    assert got["cosine"] == {"type": "warmup_cosine", "decay_epochs": 4, "warmup_epochs": 0,
                             "warmup_start": 0.0, "alpha": 0.0}  # no exponential keys
    assert got["plain"] == {"type": "constant"}
    # a defaults.schedule without a type is constant; its keys reach a variant that sets one
    cfg["defaults"] = {"schedule": {"decay_rate": 0.5}}
    got = {name: spec["schedule"] for name, spec in specs(cfg).items()}
    assert schema.validate(cfg)["defaults"]["schedule"]["type"] == "constant"
    assert got["exp"]["decay_rate"] == 0.5 and got["twin"]["decay_rate"] == 0.8


def test_a_resnet_without_depth_is_resnet_20_and_run_settings_have_defaults():
    resnet = {"architecture": "resnet", "filters": [16, 32, 64]}
    cfg = minimal(r={"model": resnet, "label": "ResNet-20"},
                  r32={"base": "r", "model": {"depth": 32}},
                  po={"per_optimizer": {"adam": {"model": resnet, "key_adjustments": "deeper"}}})
    got = specs(cfg)
    assert got["r"]["model"]["depth"] == 20 and got["po"]["model"]["depth"] == 20
    assert got["r32"]["model"]["depth"] == 32
    assert got["r"]["label"] == "ResNet-20" and got["r32"]["label"] == "r32"  # its name
    assert got["r"]["key_adjustments"] == "" and got["po"]["key_adjustments"] == "deeper"
    assert got["r"]["epochs"] == 10 and got["r"]["batch_size"] == 64


def test_the_schema_is_the_one_home_of_the_defaults():
    cfg = minimal(exp={"schedule": {"type": "exponential"}},
                  cosine={"schedule": {"type": "warmup_cosine", "decay_epochs": 4}},
                  r={"model": {"architecture": "resnet", "filters": [16, 32, 64]}})
    edited = schema.load_schema()
    definitions = edited["definitions"]
    definitions["schedule_exponential"]["properties"]["decay_rate"]["default"] = 0.5
    definitions["schedule_exponential"]["properties"]["staircase"]["default"] = False
    definitions["schedule_warmup_cosine"]["properties"]["alpha"]["default"] = 0.1
    definitions["model_resnet"]["properties"]["depth"]["default"] = 32
    definitions["run_settings"]["properties"]["key_adjustments"]["default"] = "none"
    before, after = specs(cfg), specs(cfg, edited)
    assert before["exp"]["schedule"]["decay_rate"] == 0.9 and before["exp"]["schedule"]["staircase"]
    assert after["exp"]["schedule"]["decay_rate"] == 0.5 and not after["exp"]["schedule"]["staircase"]
    assert (before["cosine"]["schedule"]["alpha"], after["cosine"]["schedule"]["alpha"]) == (0.0, 0.1)
    assert (before["r"]["model"]["depth"], after["r"]["model"]["depth"]) == (20, 32)
    assert (before["r"]["key_adjustments"], after["r"]["key_adjustments"]) == ("", "none")
    assert _differences(before["exp"], after["exp"]) == {"schedule.decay_rate", "schedule.staircase",
                                                         "key_adjustments"}
    # validate checks the specs with the schema it is given: a default depth of 21 is refused
    definitions["model_resnet"]["properties"]["depth"]["default"] = 21
    with pytest.raises(ConfigError, match="6n . 2 layers") as err:
        schema.validate(cfg, edited)
    assert "\n" not in str(err.value)


def test_fill_defaults_fills_a_definitions_defaults_and_refuses_in_one_line():
    assert schema.fill_defaults("schedule_exponential", {"type": "exponential", "decay_step": 3}) == \
        {"type": "exponential", "decay_step": 3, "decay_rate": 0.9, "staircase": True}
    with pytest.raises(ConfigError, match="config key variants/v/schedule/decay_rate") as err:
        schema.fill_defaults("schedule_exponential", {"type": "exponential", "decay_rate": 2},
                             where="variants/v/schedule")
    assert "\n" not in str(err.value)


def test_seeds_multiply_runs():
    cfg = study()
    cfg["seeds"] = [0, 1, 2]
    runs = grid.expand_runs(schema.validate(cfg))
    assert {"adam-final-s0", "adam-final-s1", "adam-final-s2"} <= set(runs)
    default = schema.validate(study())
    assert len(runs) == 3 * len(grid.expand_runs(default)) // len(default["seeds"])


def test_editing_one_optimizer_changes_only_its_runs():
    before = grid.expand_runs(schema.validate(study()))
    cfg = study()
    cfg["optimizers"]["rmsprop"]["rho"] = 0.8
    after = grid.expand_runs(schema.validate(cfg))
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
        schema.validate(cfg)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_validate_does_not_modify_its_argument():
    cfg = study()
    frozen = copy.deepcopy(cfg)
    schema.validate(cfg)
    assert cfg == frozen


def test_load_reports_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        schema.load(tmp_path / "absent.yaml")


def test_strings_from_the_command_line_get_the_schemas_types():
    # snakemake --config seeds=[0,1] variants="{final: {epochs: 3}}" passes nested strings
    cfg = study()
    cfg["seeds"] = ["0", "1"]
    cfg["variants"]["final"]["epochs"] = "3"
    cfg["optimizers"]["sgd"]["nesterov"] = "true"
    cfg["optimizers"]["rmsprop"]["rho"] = "0.8"
    cfg["variants"]["final"]["label"] = "12"
    out = schema.validate(cfg)
    assert out["seeds"] == [0, 1] and out["variants"]["final"]["epochs"] == 3
    assert out["optimizers"]["sgd"]["nesterov"] is True
    assert out["optimizers"]["rmsprop"]["rho"] == 0.8
    assert out["variants"]["final"]["label"] == "12"  # a string where a string belongs
    cfg["seeds"] = ["zero"]
    with pytest.raises(ConfigError, match="seeds/0"):
        schema.validate(cfg)
