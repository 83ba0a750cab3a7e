"""python -m dreamer --env <gymnasium id> [flags]: train on any Box-observation env."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
