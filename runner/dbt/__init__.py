"""dbt: where the project is, invoking it in-process, and every patch of dbt internals (patches.py)."""
