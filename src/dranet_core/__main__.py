"""``python -m dranet_core`` runs the ``dranet`` command line."""

import sys

from dranet_core.cli import main

sys.exit(main())
