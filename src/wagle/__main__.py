"""``python -m wagle`` is the same command line as ``wagle``."""

import sys

from wagle.cli import main

sys.exit(main())
