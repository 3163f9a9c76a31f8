"""``python -m kdtune.retrain results/<experiment>``."""

import sys

from kdtune.retrain.cli import main

sys.exit(main())
