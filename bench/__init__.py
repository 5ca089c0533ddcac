"""`python -m bench`: the report at CRM scale, against the design's reference query.

It builds (once, then reuses) a database of about a million deals over 20 tenants, runs the
runner and the reference query as fresh processes, alternating the two sides, and prints
a table of medians with their targets (docs/performance.md). `python -m bench --help` lists the
options; `--smoke` is the tiny size CI runs.
"""
