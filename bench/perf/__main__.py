"""`python -m regbench.perf` (make perf)."""

from regbench.perf.measure import main

raise SystemExit(main())
