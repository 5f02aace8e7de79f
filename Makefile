# The two commands of the README's quick start, and the real-tenant run next to them.
# Each installs what it needs first (scripts/bootstrap.sh): uv, .venv, Meltano's plugins.

.PHONY: demo tenant test

## Sandbox demo: the Graph emulator's fake tenant -> Meltano -> DuckDB -> dbt, then the wasted seats.
demo:
	bash scripts/bootstrap.sh --plugins tap-microsoft365 target-duckdb dbt-duckdb
	.venv/bin/python scripts/demo.py

## The same pipeline against your tenant (credentials in .env or .secrets/config.json).
tenant:
	bash scripts/bootstrap.sh --plugins tap-microsoft365 target-duckdb dbt-duckdb
	.venv/bin/python scripts/demo.py --tenant

## Lint, type-check, every test (PostgreSQL end to end included), build and check the package.
test:
	bash scripts/test.sh
