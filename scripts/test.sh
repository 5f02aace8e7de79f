#!/usr/bin/env bash
# The project's test command (`make test`, run by .ci/run): install; lint and type-check; build
# the distributions, check their metadata as PyPI will and run the installed wheel; then every
# test. Stops at the first failure. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh --postgres --chromium
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff check" && ruff check .
echo "== ruff format --check" && ruff format --check .
echo "== mypy" && mypy

echo "== python -m build, twine check, the wheel installed on its own"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m build --installer uv --outdir "$work/dist" . >"$work/build.log" 2>&1 \
  || { cat "$work/build.log"; exit 1; }
twine check --strict "$work"/dist/*
UV_PYTHON_DOWNLOADS=never uv venv --quiet --python .venv/bin/python "$work/venv"
uv pip install --quiet --python "$work/venv/bin/python" "$work"/dist/*.whl
for args in "--about --format=json" "--discover"; do
  # shellcheck disable=SC2086 # two words on purpose
  "$work/venv/bin/tap-microsoft365" $args >/dev/null 2>"$work/run.log" \
    || { cat "$work/run.log"; exit 1; }
done
echo "wheel installs and runs: $(basename "$work"/dist/*.whl)"

# One worker per core, each taking whole modules (their module-scoped emulators and pipelines
# stay in one process); PYTEST_WORKERS=0 runs everything in this process.
echo "== pytest" && python -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadfile "$@"
