"""``python -m every8d``: the operators' command line (same as the ``every8d`` script)."""

from every8d.cli import main

raise SystemExit(main())
