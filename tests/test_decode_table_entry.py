"""experiments.decode_table and experiments.probe_partial end to end on an untrained tiny run: the
Hydra keys (lists of decoder-override strings, a quoted string) reach the library as given."""

import json
from pathlib import Path

import pytest

from suite_helpers import save_run

SETTINGS = ["decoder=marginal decoder.block_length=8", "decoder=random decoder.block_length=8"]


@pytest.fixture
def run_dir(tiny_module, compose, tiny_overrides, tmp_path) -> Path:
    return save_run(tiny_module, compose(tiny_overrides), tmp_path / "run")


def test_decode_table_decodes_every_setting_given_as_a_list(run_dir, tmp_path, capsys, monkeypatch):
    from experiments.decode_table import main

    monkeypatch.chdir(tmp_path)
    quoted = ",".join(f'"{s}"' for s in SETTINGS)
    main([f"run={run_dir}", f"settings=[{quoted}]", "samples=4", "batch_size=4", "seeds=[0,1]", "out=table.md"])
    printed = capsys.readouterr().out
    rows = json.loads((tmp_path / "table.json").read_text())
    assert [r["setting"] for r in rows] == ["the data itself", *SETTINGS]
    assert all(r["seeds"] == 2 for r in rows[1:])
    assert (tmp_path / "table.md").read_text().strip() in printed
    assert f"| `{SETTINGS[1]}` |" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "table.json", "table.md"]  # nothing of Hydra's


def test_probe_partial_writes_a_new_directory_and_refuses_a_used_one(run_dir, tmp_path, capsys, monkeypatch):
    from experiments.probe_partial import main

    monkeypatch.chdir(tmp_path)
    args = [f"run={run_dir}", f'decoder_overrides="{SETTINGS[0]}"', "calls=[0,2]", "samples=4", "mask_counts=[4]"]
    main(args)
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert out.parent == Path("outputs/probes/partial")  # the default: a new directory per probe
    saved = json.loads((tmp_path / out / "partial.json").read_text())
    assert saved["settings"]["decoder"] == SETTINGS[0] and saved["settings"]["test prompts"] == 4
    assert sorted(saved["states"]) == ["0", "2"] and sorted(saved["mask_counts"]) == ["4"]
    assert "## P(end) by distance to the nearest visible token" in (tmp_path / out / "partial.md").read_text()
    with pytest.raises(SystemExit) as exit_:
        main([*args, f"out={out}"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: out={out} is not empty; choose a new directory"
