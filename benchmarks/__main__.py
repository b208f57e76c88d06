"""``python -m benchmarks [ARGS]``: the same as ``scripts/bench [ARGS]``."""

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())
