"""Shared pytest setup. QGIS tests live in tests/plugin (QGIS env), training tests in
tests/training (training env), pure core tests in tests/core (either env)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
