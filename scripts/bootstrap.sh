#!/usr/bin/env bash
# Install what the demo and the tests need, from nothing but python3 (>= 3.11) and the package
# registries:
#   1. uv, if it is not on PATH (pip-installed into a cache folder outside the repo);
#   2. .venv with the tap (editable) and the `dev` dependency group (tests, linters, Meltano,
#      build tools, duckdb), at the versions pinned in uv.lock;
#   --postgres: PostgreSQL 15's binaries for the end-to-end tests (apt-get, when running as root
#      on Debian/Ubuntu and /usr/lib/postgresql/15/bin is missing; the tests start the server);
#   --chromium: Chromium for the HTML report's test (apt-get, as root on Debian/Ubuntu);
#   --plugins NAME...: those Meltano plugins under .meltano/ (`meltano install`).
# Re-running is cheap: uv's cache (~/.cache/uv) keeps every wheel after the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

export UV_PYTHON_DOWNLOADS=never  # the machine's own Python; no network but package registries

if ! command -v uv >/dev/null 2>&1; then
  tools="${XDG_CACHE_HOME:-$HOME/.cache}/tap-microsoft365/uv-tool"
  if [ ! -x "$tools/bin/uv" ]; then
    echo "bootstrap: uv not found; installing it from PyPI into $tools" >&2
    python3 -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
  fi
  export PATH="$tools/bin:$PATH"
fi

# Exactly the versions in uv.lock (--locked: a pyproject.toml changed without `uv lock` fails
# here instead of installing something else). The tap is installed editable; packages the lock
# does not list are removed from .venv.
UV_PROJECT_ENVIRONMENT=.venv uv sync --quiet --locked --python '>=3.11' --group dev

# --postgres [--chromium]: what the end-to-end tests need from the system (apt-get, as root).
if [ "${1:-}" = "--postgres" ]; then
  shift
  pg_bin="${POSTGRES_BIN_DIR:-/usr/lib/postgresql/15/bin}"
  if [ ! -x "$pg_bin/initdb" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "bootstrap: installing PostgreSQL 15 with apt-get" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
    else
      echo "bootstrap: the end-to-end tests need PostgreSQL 15's binaries in $pg_bin:" \
        "install PostgreSQL 15 or set POSTGRES_BIN_DIR" >&2
      exit 1
    fi
  fi
fi

# --chromium: Debian's headless-capable Chromium, which the test of the HTML report opens it in.
if [ "${1:-}" = "--chromium" ]; then
  shift
  if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "bootstrap: installing Chromium with apt-get" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
      echo "bootstrap: the HTML report's test needs Chromium (Debian/Ubuntu: apt-get install" \
        "chromium)" >&2
      exit 1
    fi
  fi
fi

if [ "${1:-}" = "--plugins" ]; then
  shift
  MELTANO_SEND_ANONYMOUS_USAGE_STATS=false .venv/bin/meltano --log-level=warning install "$@"
fi
