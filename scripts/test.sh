#!/usr/bin/env bash
# Set up both environments (idempotent) and run the whole test suite.
#   tests/core + tests/plugin : QGIS env (.venv-qgis, real QGIS 3.22 headless)
#   tests/training            : training env (.venv-train, torch)
# Extra arguments go to both pytest runs (e.g. -k classify, -x).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/setup.sh all || exit 1
export QT_QPA_PLATFORM=offscreen
export SATCLASSIFY_TRAIN_PYTHON="$ROOT/.venv-train/bin/python"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/runtime-$(id -u)}"; mkdir -p "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR"
status=0
echo "=== QGIS env: tests/core tests/plugin"
.venv-qgis/bin/python -m pytest tests/core tests/plugin "$@" || status=1
echo "=== training env: tests/training"
.venv-train/bin/python -m pytest tests/training -p no:cacheprovider "$@" || status=1
exit $status
