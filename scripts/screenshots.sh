#!/usr/bin/env bash
# Regenerate the README screenshots (docs/images/qgis_*.png) from the real QGIS desktop, headless under Xvfb.
#
#   bash scripts/screenshots.sh [OUT_DIR]        (default docs/images)
#
# Starts Xvfb on a free display, installs the plugin into a throw-away QGIS profile (scripts/build_zip.py
# --profile), starts the `qgis` binary with scripts/screenshot_steps.py (--code), which opens the sample stack,
# the classify dialog, the demo's prediction and its generalised polygons, saves each window as a PNG and quits.
# Needs the demo's outputs (output/demo/prediction_level2.tif, model_cnn_dual.onnx): made by scripts/demo.py
# when missing (about 90 s). Xvfb comes with scripts/setup.sh (apt package xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$(realpath -m "${1:-docs/images}")
mkdir -p "$OUT"
if [ ! -f output/demo/prediction_level2.tif ] || [ ! -f output/demo/model_cnn_dual.onnx ]; then
  echo "[screenshots] no demo outputs yet: running scripts/demo.py"
  .venv-qgis/bin/python scripts/demo.py
fi
command -v Xvfb >/dev/null || { echo "Xvfb is missing: bash scripts/setup.sh qgis (apt package xvfb)"; exit 2; }
work=$(mktemp -d)
xvfb_pid=""
cleanup() { [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
display=""
for n in $(seq 91 120); do
  if [ ! -e "/tmp/.X11-unix/X$n" ] && [ ! -e "/tmp/.X$n-lock" ]; then display=":$n"; break; fi
done
[ -n "$display" ] || { echo "no free X display between :91 and :120"; exit 2; }
Xvfb "$display" -screen 0 1360x860x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X${display#:}" ] && break; sleep 0.1; done
python3 scripts/build_zip.py --profile "$work/config" >/dev/null
export DISPLAY=$display QGIS_CUSTOM_CONFIG_PATH="$work/config" SATCLASSIFY_SHOTS="$OUT" SATCLASSIFY_ROOT="$ROOT"
export XDG_RUNTIME_DIR="$work/run" && mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
unset QT_QPA_PLATFORM
timeout 300 qgis --nologo --noversioncheck --code "$ROOT/scripts/screenshot_steps.py" \
  >"$work/qgis.log" 2>&1 || true
if [ ! -f "$work/done" ] && ! grep -q "screenshots done" "$work/qgis.log"; then
  tail -40 "$work/qgis.log"
fi
status=0
for f in qgis_stack_natural_colour qgis_classify_dialog qgis_prediction qgis_generalized; do
  if [ -f "$OUT/$f.png" ]; then echo "$OUT/$f.png $(( $(stat -c %s "$OUT/$f.png") / 1024 )) KB"; else
    echo "missing: $OUT/$f.png"; status=1; fi
done
grep "^\[screenshots\]" "$work/qgis.log" || true
exit $status
