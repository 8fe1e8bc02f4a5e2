"""``python -m saddlescape.cli``: the same command line as ``saddlescape``."""

from saddlescape.cli import main

if __name__ == "__main__":  # not when imported (the documentation's doctest collection)
    raise SystemExit(main())
