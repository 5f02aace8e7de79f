"""Scale-out of tap-microsoft365 over many tenants on Dagster (see orchestrate/README.md)."""
