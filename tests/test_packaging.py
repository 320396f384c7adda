"""``pip install .`` (not editable) gives a working suite: configs ship inside the package, the console
scripts run a job from any working directory, and the declared dependencies cover the imports."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from suite_helpers import REPO, cli_env

pytestmark = pytest.mark.long  # real processes or many trainings: scheduled first under xdist

JOB = ("model=tiny", "trainer.max_epochs=1", "data.train_size=32", "data.val_size=16", "data.test_size=16",
       "data.batch_size=32", "data.answer_length=16", "data.max_free_sentences=0", "callbacks.progress=null")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package built from a copy of the tracked files and installed into a folder of its own."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file() and not name.startswith("tests/"):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, text=True)
    return target


def test_the_configs_ship_inside_the_installed_package(installed):
    configs = installed / "dlm_lightning" / "configs"
    shipped = {str(p.relative_to(configs)) for p in configs.rglob("*.yaml")}
    in_repo = {str(p.relative_to(REPO / "dlm_lightning" / "configs"))
               for p in (REPO / "dlm_lightning" / "configs").rglob("*.yaml")}
    assert shipped == in_repo and "config.yaml" in shipped


def test_dlm_run_trains_a_tiny_job_from_another_directory(installed, tmp_path):
    env = cli_env() | {"PYTHONPATH": str(installed)}  # ahead of the editable checkout
    done = subprocess.run([str(installed / "bin" / "dlm-run"), *JOB], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path / "outputs" / "runs"
    assert (run_dir / "metrics.json").exists()
    provenance = (run_dir / "provenance.json").read_text()
    assert '"git": null' in provenance  # an installed package is no checkout


def _imported_packages() -> set[str]:
    names = set()
    for path in [*(REPO / "dlm_lightning").rglob("*.py"), *(REPO / "experiments").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_a_declared_dependency():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_distribution_name(r) for r in project["dependencies"]}
    declared |= {_distribution_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    module_to_distribution = {"yaml": "pyyaml", "hydra": "hydra-core", "lightning": "lightning",
                              "google": "protobuf", "mauve": "mauve-text"}
    third_party = _imported_packages() - set(sys.stdlib_module_names) - {"__main__", "dlm_lightning", "experiments"}
    missing = {m for m in third_party if module_to_distribution.get(m, m).replace("_", "-") not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def _distribution_name(requirement: str) -> str:
    import re

    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")
