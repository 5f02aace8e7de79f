#!/usr/bin/env bash
# The project's test command (`make test`, run by .ci/run): install, lint, type-check, test,
# then build the distributions and check their metadata as PyPI will. Stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff check" && ruff check .
echo "== ruff format --check" && ruff format --check .
echo "== mypy" && mypy
echo "== pytest" && python -m pytest "$@"

echo "== build + twine check"
dist="$(mktemp -d)"
trap 'rm -rf "$dist"' EXIT
python -m build --installer uv --outdir "$dist" . >"$dist/build.log" 2>&1 || { cat "$dist/build.log"; exit 1; }
twine check --strict "$dist"/*
