"""Command-line normalisation applied before Hydra parses argv.

Hydra accepts ``+group=x`` only for groups absent from the defaults list and ``group=x`` only for
groups in it. Every group here is in the defaults list, so ``+schedule=adaptive`` (the documented
form) is rewritten to ``schedule=adaptive``; both spellings then mean the same thing.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # package data: installed with the package


def config_groups(config_dir: Path = CONFIG_DIR, primary: str = "config.yaml") -> set[str]:
    """The groups in the primary config's defaults list: the ones Hydra only accepts as ``group=x``."""
    from omegaconf import OmegaConf

    groups = set()
    for entry in OmegaConf.load(config_dir / primary).get("defaults", []):
        if not isinstance(entry, str):  # "group: option", "optional group: option", "group@pkg: option"
            groups.add(str(next(iter(entry))).split()[-1].split("@")[0])
    return groups - {"hydra"}


def own_groups_help(primary: str, config_dir: Path = CONFIG_DIR) -> str:
    """``group: option, option`` for each group in ``<primary>.yaml``'s defaults list: what ``--help`` of
    that entry point lists (Hydra's own list would show every group of the shared config directory)."""
    lines = []
    for group in sorted(g for g in config_groups(config_dir, f"{primary}.yaml") if not g.startswith("hydra/")):
        options = sorted(p.stem for p in (config_dir / group).glob("*.yaml"))
        lines.append(f"{group}: {', '.join(options)}")
    return "\n".join(lines) or "(none)"


def normalize_group_overrides(argv: list[str], groups: set[str]) -> list[str]:
    pattern = re.compile(r"^\+([A-Za-z_][\w]*)=")
    out = []
    for arg in argv:
        match = pattern.match(arg)
        out.append(arg[1:] if match and match.group(1) in groups else arg)
    return out


def default_precision() -> str:
    """bf16 autocast where the hardware computes in bf16 (a GPU, or a CPU with AVX512-BF16 or AMX);
    elsewhere it is emulated, and full precision is several times faster (measured on an AVX2-only
    2-core CPU: 3.5x slower per training step for model=tiny, 6.9x for model=small)."""
    import torch

    if torch.cuda.is_available():
        return "bf16-mixed"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "32-true"
    return "bf16-mixed" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "32-true"


def register_resolvers() -> None:
    """``${dlm.first_set:a,b}``: a unless it is null, else b (used to put a resumed run in its own dir);
    ``${dlm.own_groups:probe}``: the config groups of one entry point, for its ``--help``;
    ``${dlm.launch_stamp:}`` and ``${dlm.job_dirname:...}``: output directory names (launch/names.py)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("dlm.first_set"):
        OmegaConf.register_new_resolver("dlm.first_set", lambda first, second: second if first is None else first)
    if not OmegaConf.has_resolver("dlm.own_groups"):
        OmegaConf.register_new_resolver("dlm.own_groups", own_groups_help)
    if not OmegaConf.has_resolver("dlm.default_precision"):
        OmegaConf.register_new_resolver("dlm.default_precision", default_precision, use_cache=True)
    if not OmegaConf.has_resolver("dlm.launch_stamp"):
        from dlm_lightning.launch.names import job_dirname, launch_stamp

        # cached: one value per config, like Hydra's ${now:}
        OmegaConf.register_new_resolver("dlm.launch_stamp", launch_stamp, use_cache=True)
        OmegaConf.register_new_resolver("dlm.job_dirname", job_dirname)


def check_output_arguments(argv: list[str]) -> None:
    """The directory a job will write under must be one it can create (Hydra's own failure is a traceback)."""
    from dlm_lightning.errors import RunDirError

    sweeping = any(arg in ("-m", "--multirun") for arg in argv)
    key = "hydra.sweep.dir" if sweeping else "hydra.run.dir"
    given = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"{key}=")]
    target = Path(given[-1]) if given else Path("outputs") / ("sweeps" if sweeping else "runs")
    name = key if given else "the output directory"
    for path in (target, *target.parents):
        if path.exists():
            if not path.is_dir():
                raise RunDirError(f"{name} {target}: {path} is a file, not a directory")
            if not os.access(path, os.W_OK | os.X_OK):
                raise RunDirError(f"{name} {target}: {path} is not writable")
            return


def check_resume_arguments(argv: list[str]) -> None:
    """``resume=`` is checked before Hydra runs, since Hydra creates the run directory it names."""
    from dlm_lightning.errors import RunDirError

    values = [arg.split("=", 1)[1] for arg in argv if re.match(r"^\+{0,2}resume=", arg)]
    if not values:
        return
    value = values[-1]
    if value in ("null", "None"):
        return
    if any(arg in ("-m", "--multirun") for arg in argv):
        raise RunDirError(f"resume={value} continues one run and cannot be swept: drop -m/--multirun "
                          f"(an unfinished sweep continues when you re-run it into its hydra.sweep.dir)")
    if value.strip() == "":
        raise RunDirError("resume= is empty (an unset shell variable?): give the run directory to continue")
    path = Path(value)
    if not path.exists():
        raise RunDirError(f"resume={value}: no such directory")
    if path.is_file():
        raise RunDirError(f"resume={value} is a file: give the run directory that holds it "
                          f"(resume continues from that directory's checkpoints/last.ckpt)")


def check_option(group: str, name: str, key: str, config_dir: Path = CONFIG_DIR) -> None:
    """Refuses, in one line naming ``key``, a name that is not an option of config group ``group``."""
    from dlm_lightning.errors import ConfigError

    options = sorted(p.stem for p in (config_dir / group).glob("*.yaml"))
    if name not in options:
        raise ConfigError(key, name, f"unknown {group}; choose from {', '.join(options)}")


def compose_config(overrides=(), config_name: str = "config", hydra: bool = False):
    """Composes ``dlm_lightning/configs/<config_name>.yaml`` exactly as the command line does (``+group=x`` normalised,
    the suite's resolvers registered): the one way entry points, benchmarks and tests compose configs."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    argv = normalize_group_overrides(list(overrides), config_groups()) if config_name == "config" else list(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name, overrides=argv, return_hydra_config=hydra)
    finally:
        GlobalHydra.instance().clear()


def check_composition(argv: list[str], config_name: str = "config") -> None:
    """Composes the config once before Hydra does, so an unknown option or key fails in one line (Hydra
    prints several, with its search path). Sweeps (-m) are left to Hydra: their values are lists."""
    from hydra.errors import HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    from dlm_lightning.errors import UserError

    if any(arg.startswith("-") for arg in argv):  # -m sweeps are left to Hydra: their values are lists
        return
    try:
        compose_config(argv, config_name)
    except OverrideParseException as error:  # name the argument: Hydra's message quotes only a fragment
        bad = next((arg for arg in argv if not _parses(arg)), None)
        hint = " (quote list items that hold '=' or spaces: 'key=[\"a=b c\"]')" if bad and "[" in bad else ""
        raise UserError(f"{bad}: {one_line(str(error))}{hint}" if bad else one_line(str(error))) from None
    except (HydraException, OmegaConfBaseException) as error:
        raise UserError(one_line(str(error))) from None


def check_overrides(key: str, setting: str) -> None:
    """A string of space-separated decoder overrides (``decoder=random decoder.block_length=40``) must
    compose with the main config; checked before any work, the error naming ``key``."""
    from dlm_lightning.errors import UserError

    try:
        check_composition(setting.split())
    except UserError as error:
        raise UserError(f"{key}: {setting!r}: {error}") from None


def _parses(arg: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        OverridesParser.create().parse_overrides([arg])
    except OverrideParseException:
        return False
    return True


def one_line(message: str) -> str:
    """A multi-line framework message as one line: its lines joined, Hydra's search-path listing dropped."""
    text = ""
    for line in message.splitlines():
        if line.startswith("Config search path"):
            break
        if line.strip():  # Hydra lists options one a line, indented with a tab: join them with commas
            text += " " + line.strip() + ("," if line.startswith("\t") else "")
    return text.strip().rstrip(",")


def remove_unclaimed(directory: Path) -> None:
    """Removes ``directory`` and its parents up to the working directory while they are empty: what
    Hydra created for a job that was refused before it wrote anything."""
    for path in (directory, *directory.parents):
        if path == Path.cwd() or not path.is_dir() or any(path.iterdir()):
            break
        path.rmdir()


@contextlib.contextmanager
def exit_on_user_error(cleanup=None):
    """An entry point's body: a UserError inside it prints one line (``error: ...``) and exits 2, after
    ``cleanup()`` when given."""
    import sys

    from dlm_lightning.errors import UserError

    try:
        yield
    except UserError as error:
        if cleanup is not None:
            cleanup()
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def check_or_exit(argv: list[str], config_name: str, *checks) -> None:
    """Runs a Hydra entry point's checks of its command line before Hydra does anything (it creates
    directories and prints multi-line errors): ``checks`` on argv, then the composition itself. A bad
    argument prints one line and exits 2."""
    with exit_on_user_error():
        for check in checks:
            check(argv)
        check_composition(argv, config_name)


def run_main(hydra_main, config_name: str, argv: list[str] | None = None) -> None:
    """Runs an entry point's ``@hydra.main`` function on ``argv`` (default: the command line), after
    ``check_or_exit``. Tests pass ``argv`` to run a command line in-process; sys.argv is restored after."""
    import sys

    saved = sys.argv
    if argv is not None:
        sys.argv = [saved[0], *argv]
    try:
        check_or_exit(sys.argv[1:], config_name)
        hydra_main()
    finally:
        sys.argv = saved
