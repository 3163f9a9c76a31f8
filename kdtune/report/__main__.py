"""``python -m kdtune.report results/<experiment>``."""

import sys

from kdtune.report.cli import main

sys.exit(main())
