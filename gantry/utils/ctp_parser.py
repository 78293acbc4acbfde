"""The earlier name of :mod:`gantry.ctp`, kept working.

``python -m gantry.utils.ctp_parser IN OUT [--kind K] [--report R]`` (the
original README's command) and ``from gantry.utils.ctp_parser import …`` run
the same code as ``python -m gantry.ctp`` and ``from gantry.ctp import …``.

Examples
--------
>>> import gantry.ctp
>>> convert_file is gantry.ctp.convert_file
True
"""

from __future__ import annotations

import sys

from gantry.ctp import *  # noqa: F403  (the same names, the same objects)
from gantry.ctp import __all__ as __all__
from gantry.ctp import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m gantry.utils.ctp_parser"))
