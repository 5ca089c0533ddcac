"""`python -m bench`: the report at CRM scale, against the seed design's raw SQL.

It builds (once, then reuses) a database of about a million deals over 20 tenants, runs the
runner and the seed's reference query as fresh processes, alternating the two sides, and prints
a table of medians with the targets of issue 6. `python -m bench --help` lists the options;
`--smoke` is the tiny size CI runs.
"""
