#!/usr/bin/env bash
# Set up (idempotent) and run the main job on the embedded sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
exec .venv-qgis/bin/python scripts/demo.py "$@"
