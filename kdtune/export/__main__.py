"""``python -m kdtune.export EXPERIMENT_DIR [--onnx] [--int8] ...``."""

import sys

from kdtune.export.cli import main

sys.exit(main())
