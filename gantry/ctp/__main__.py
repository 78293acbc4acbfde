"""``python -m gantry.ctp IN OUT [--kind K] [--report R]``."""

import sys

from gantry.ctp import main

sys.exit(main())
