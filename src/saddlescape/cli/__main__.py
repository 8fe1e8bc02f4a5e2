"""``python -m saddlescape.cli``: the same command line as ``saddlescape``."""

from saddlescape.cli import main

raise SystemExit(main())
