"""``python -m pytest_i2v``."""

from __future__ import annotations

import sys

from pytest_i2v.cli import main

sys.exit(main())
