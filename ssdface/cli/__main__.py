"""``python -m ssdface.cli`` runs the command line tool, as ``python -m ssdface`` does."""

import sys

from . import main

sys.exit(main())
