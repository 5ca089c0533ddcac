import gc

from runner.cli import main

status = main()
# The process ends here. Its last garbage collection at interpreter shutdown would walk every
# object dbt made, only for the operating system to reclaim them anyway: 0.35 s of a 2.3 s
# small-tenant run (measured). Frozen objects are left out of that collection.
gc.freeze()
raise SystemExit(status)
