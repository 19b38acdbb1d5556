"""``python -m studio``: the same as the ``talking-head-studio`` command."""

import sys

from studio.cli import main

if __name__ == "__main__":
    sys.exit(main())
