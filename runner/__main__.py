import gc

from runner.cli import main

status = main()
# The process ends here. Its last garbage collection at interpreter shutdown would walk every
# object dbt made, only for the operating system to reclaim them anyway. Frozen objects are left
# out of that collection (docs/decisions/frozen-heap.md).
gc.freeze()
raise SystemExit(status)
