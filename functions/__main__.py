"""`python -m functions ...`: the operators' command line (see functions/cli.py)."""

from functions.cli import main

raise SystemExit(main())
