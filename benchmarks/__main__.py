"""``python -m benchmarks [--quick]``: run every benchmark, write benchmarks/results.md."""

import sys

from benchmarks.run_all import main

sys.exit(main())
