"""``python -m renderers.native``: build the native kernels for this machine (see __init__)."""

import sys

from renderers.native import main

sys.exit(main())
