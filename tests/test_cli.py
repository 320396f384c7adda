"""The CLI's argv normalisation: `+schedule=x` and `schedule=x` select the same option (design.md section 2),
in composition and in real runs."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from dlm_lightning.cli import CONFIG_DIR, config_groups, normalize_group_overrides, own_groups_help


def test_normaliser_rewrites_only_group_selections():
    groups = {"schedule", "decoder", "model"}
    argv = ["run.py", "+schedule=adaptive", "+decoder=joint", "schedule=uniform", "+model.d_model=64",
            "+schedule.w_near=2", "+seed=3", "+other=1", "-m", "data.path=+schedule=x", "+decoder"]
    assert normalize_group_overrides(argv, groups) == [
        "run.py", "schedule=adaptive", "decoder=joint", "schedule=uniform", "+model.d_model=64",
        "+schedule.w_near=2", "+seed=3", "+other=1", "-m", "data.path=+schedule=x", "+decoder"]


def test_config_groups_are_the_selectable_groups():
    groups = config_groups()
    assert {"data", "model", "schedule", "decoder", "trainer", "callbacks", "experiment"} <= groups
    assert "hydra" not in groups  # Hydra's own group is never rewritten


def test_both_spellings_compose_to_one_config(compose):
    plus, plain = compose(["+schedule=uniform"], hydra=True), compose(["schedule=uniform"], hydra=True)
    assert plus.hydra.runtime.choices.schedule == plain.hydra.runtime.choices.schedule == "uniform"
    assert list(plus.hydra.overrides.task) == list(plain.hydra.overrides.task) == ["schedule=uniform"]
    plus, plain = (OmegaConf.to_container(c, resolve=False) for c in (plus, plain))
    del plus["hydra"], plain["hydra"]
    assert plus == plain


def test_both_spellings_run(cli_runs):
    # run A was started with +schedule=uniform and run B with schedule=uniform (both finished: test_resume)
    a_dir, b_dir = cli_runs.finished.dir, cli_runs.killed_copy
    assert cli_runs.finished.returncode == 0, cli_runs.finished.stderr[-3000:]
    assert "+schedule=uniform" in cli_runs.finished.args and "schedule=uniform" in cli_runs.killed_args
    a, b = OmegaConf.load(a_dir / "config.yaml"), OmegaConf.load(b_dir / "config.yaml")
    assert a.choices.schedule == b.choices.schedule == "uniform"
    assert OmegaConf.to_container(a) == OmegaConf.to_container(b)
    for run_dir in (a_dir, b_dir):  # what Hydra received, as the job records it
        overrides = OmegaConf.to_container(OmegaConf.load(run_dir / "overrides.yaml"))
        assert "schedule=uniform" in overrides and "+schedule=uniform" not in overrides
    assert cli_runs.finished.metrics()["schedule"] == "uniform"


def test_help_lists_only_the_entry_points_own_groups(compose):
    probe = own_groups_help("probe").splitlines()
    assert probe == ["prompts: " + ", ".join(sorted(p.stem for p in (CONFIG_DIR / "prompts").glob("*.yaml")))]
    generate = own_groups_help("generate")
    assert generate.startswith("decoder: ") and "data:" not in generate and "prompts" not in generate
    main = dict(line.split(": ", 1) for line in own_groups_help("config").splitlines())
    assert set(main) == {g for g in config_groups() if not g.startswith("hydra/")} and "corpus" in main["data"] and "adaptive" in main["schedule"]
    # the templates resolve: what --help prints for probe names its own group and no other
    template = compose([], config_name="probe", hydra=True).hydra.help.template
    assert "prompts: corpus" in template and "schedule:" not in template and "$CONFIG" in template


# each entry point's own keys (one per entry point) and the tmp files its --help must not create
ENTRY_KEYS = {"trap": "run_dirs", "evaluate": "gap_samples", "report": "seed_key", "bench": "rounds",
              "bench_decode": "train_steps", "bench_schedules": "model_name", "decode_table": "settings",
              "probe_partial": "mask_counts"}


@pytest.mark.parametrize("name", sorted(ENTRY_KEYS))
def test_help_of_the_converted_entry_points_lists_their_own_keys_and_writes_nothing(entry, name):
    result = entry(f"experiments.{name}", "--help")
    assert result.code == 0, result.stderr
    assert "== Configuration groups ==" in result.stdout and "(none)" in result.stdout
    assert f"\n{ENTRY_KEYS[name]}:" in result.stdout
    # no group of the main config and no other entry point's key
    assert "\nschedule:" not in result.stdout and "\ndecoder:" not in result.stdout
    assert not [k for other, k in ENTRY_KEYS.items() if other != name and f"\n{k}:" in result.stdout]
    assert list(result.cwd.iterdir()) == []


def test_a_print_only_entry_point_creates_nothing(entry):
    result = entry("experiments.report", "sweep_dir=missing")
    assert result.code == 2 and result.stderr_lines == ["error: missing: no such sweep directory"]
    assert list(result.cwd.iterdir()) == []


def test_check_keys_names_the_key_and_what_it_must_be():
    from typing import Literal, Optional

    from dlm_lightning.config_types import PositiveInt, _allowed, check_keys
    from dlm_lightning.errors import ConfigError

    schema = {"ks": list[PositiveInt], "split": Literal["val", "test"], "runs": Optional[list[str]],
              "level": Literal[1, 2]}
    check_keys(OmegaConf.create({"ks": [1, 8], "split": "test", "runs": None, "level": 2}), schema)
    cases = [({"ks": [1, 0]}, "ks=[1, 0] is invalid: must be a list [...] (each item an integer >= 1)"),
             ({"ks": 4}, "ks=4 is invalid: must be a list [...] (each item an integer >= 1)"),
             ({"split": "train"}, "split='train' is invalid: must be one of val, test"),
             ({"runs": ["a", 3]}, "runs=['a', 3] is invalid: must be a list [...] (each item a string) or null"),
             ({"level": "2"}, "level='2' is invalid: must be one of 1, 2")]
    for changed, message in cases:
        values = {"ks": [1], "split": "val", "runs": None, "level": 1, **changed}
        with pytest.raises(ConfigError) as error:
            check_keys(OmegaConf.create(values), schema)
        assert str(error.value) == message
    # components' signatures keep their own checks: lists and Literal there are not judged here
    assert _allowed(list[int]) is None and _allowed(Literal["a"]) is None and _allowed(PositiveInt) is None
