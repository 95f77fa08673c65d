"""`python -m regbench` is the `regbench` command."""

from regbench.cli import main

raise SystemExit(main())
