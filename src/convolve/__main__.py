"""``python -m convolve``: the same command line as the ``convolve`` script."""

import sys

from .cli import main

sys.exit(main())
