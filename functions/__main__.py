"""`python -m functions ...`: the operators' command line (see tools/cli.py)."""

from tools.cli import main

raise SystemExit(main())
