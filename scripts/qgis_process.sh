#!/usr/bin/env bash
# Run qgis_process with SatClassify installed in a project-local QGIS profile (.qgis-config/).
# Usage: scripts/qgis_process.sh run satclassify:classify -- INPUT=... MODEL=... OUTPUT=...
# Uses /usr/bin/qgis_process.bin: Debian 12's /usr/bin/qgis_process wrapper passes a flag QGIS 3.22 rejects.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CFG="${SATCLASSIFY_QGIS_CONFIG:-$ROOT/.qgis-config}"
# The QGIS venv: the project's .venv-qgis, or SATCLASSIFY_QGIS_VENV (the version matrix keeps it in its chroot).
VENV="${SATCLASSIFY_QGIS_VENV:-$ROOT/.venv-qgis}"
PY=/usr/bin/python3; [ -x "$VENV/bin/python" ] && PY="$VENV/bin/python"
"$PY" "$ROOT/scripts/build_zip.py" --profile "$CFG" >/dev/null
export QGIS_CUSTOM_CONFIG_PATH="$CFG" QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/runtime-$(id -u)}"; mkdir -p "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR"
# The venv's site-packages (onnxruntime, pystac-client, ...) for QGIS's Python.
if [ -x "$VENV/bin/python" ]; then
  SP=$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')
  export PYTHONPATH="$SP${PYTHONPATH:+:$PYTHONPATH}"
fi
exec /usr/bin/qgis_process.bin "$@"
