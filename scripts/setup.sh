#!/usr/bin/env bash
# Idempotent setup of the environments. Usage: scripts/setup.sh [qgis|train|headless|all]   (default: all)
#  - apt: QGIS 3.22 + GDAL (Debian 12) when missing
#  - .venv-qgis : /usr/bin/python3 venv with system site packages (imports qgis), numpy pinned to the system's
#  - .venv-train: separate venv for PyTorch training (torch, smp, rasterio; numpy 2 allowed)
#  - .venv-headless: a plain venv (no system site packages: qgis is not importable) with GDAL's Python bindings
#    built against the system libgdal (apt libgdal-dev), `pip install .` (the satclassify command) and dask
#    (requirements-headless.txt); about a minute on a fresh machine (docs/headless.md)
# A stamp file holding the requirements' hash skips pip when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
what=${1:-all}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# python3-pyqt6: tests/plugin/test_qgis4_api.py imports the plugin against real PyQt6 (Debian 12 ships 6.4, 13 6.8)
apt_packages="qgis python3-qgis qgis-providers python3-gdal gdal-bin python3-venv python3-pip xvfb xauth python3-pyqt6"
need_apt=""
for p in $apt_packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt="$need_apt $p"
done
if [ -n "$need_apt" ]; then
  echo "[setup] apt-get install$need_apt"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $need_apt
fi

stamp() { cat "$@" | sha256sum | cut -c1-16; }

if [ "$what" = all ] || [ "$what" = qgis ]; then
  V=.venv-qgis
  if [ ! -x $V/bin/python ]; then
    echo "[setup] creating $V"
    /usr/bin/python3 -m venv --system-site-packages $V
  fi
  np=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')
  printf 'numpy==%s\n' "$np" > $V/constraints.txt
  gpu=cpu
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu=nvidia; fi
  s=$(stamp requirements-qgis.txt $V/constraints.txt <(echo "$gpu"))
  if [ "$(cat $V/.stamp 2>/dev/null)" != "$s" ]; then
    echo "[setup] pip install -r requirements-qgis.txt (numpy pinned to $np)"
    $V/bin/python -m pip install -q -c $V/constraints.txt -r requirements-qgis.txt
    if [ "$gpu" = nvidia ]; then
      echo "[setup] NVIDIA GPU found: onnxruntime-gpu instead of onnxruntime in $V"
      $V/bin/python -m pip uninstall -q -y onnxruntime
      $V/bin/python -m pip install -q -c $V/constraints.txt "onnxruntime-gpu>=1.17,<2"
    fi
    $V/bin/python -c "import numpy, onnxruntime; from osgeo import gdal; assert numpy.__version__ == '$np'"
    echo "$s" > $V/.stamp
  fi
fi

if [ "$what" = all ] || [ "$what" = train ]; then
  V=.venv-train
  if [ ! -x $V/bin/python ]; then
    echo "[setup] creating $V"
    /usr/bin/python3 -m venv $V
  fi
  s=$(stamp requirements-training.txt)
  if [ "$(cat $V/.stamp 2>/dev/null)" != "$s" ]; then
    echo "[setup] pip install -r requirements-training.txt (torch wheels from local disk when present)"
    $V/bin/python -m pip install -q --upgrade pip
    $V/bin/python -m pip install -q -r requirements-training.txt
    $V/bin/python -c "import torch, segmentation_models_pytorch, onnx, onnxruntime, rasterio"
    echo "$s" > $V/.stamp
  fi
fi
if [ "$what" = all ] || [ "$what" = headless ]; then
  V=.venv-headless
  need_apt=""
  for p in libgdal-dev python3-dev g++; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt="$need_apt $p"
  done
  if [ -n "$need_apt" ]; then
    echo "[setup] apt-get install$need_apt (to build GDAL's Python bindings for $V)"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $need_apt
  fi
  gv=$(gdal-config --version)
  src=$(find satclassify_plugin pyproject.toml -type f \( -name '*.py' -o -name '*.csv' -o -name '*.onnx' -o -name '*.toml' \) \
        -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
  s=$(stamp requirements-headless.txt <(echo "$gv $src"))
  if [ "$(cat $V/.stamp 2>/dev/null)" != "$s" ]; then
    t0=$SECONDS
    [ -x $V/bin/python ] || { echo "[setup] creating $V"; /usr/bin/python3 -m venv $V; }
    # GDAL < 3.9 builds its numpy bridge (gdal_array) against numpy 1.x only
    if printf '%s\n3.9\n' "$gv" | sort -V -C; then echo 'numpy<2' > $V/constraints.txt; else : > $V/constraints.txt; fi
    $V/bin/python -m pip install -q -c $V/constraints.txt numpy setuptools wheel
    if ! $V/bin/python -c "from osgeo import gdal, gdal_array; assert gdal.__version__ == '$gv'" 2>/dev/null; then
      echo "[setup] building GDAL==$gv Python bindings in $V"
      $V/bin/python -m pip install -q -c $V/constraints.txt --no-build-isolation --no-cache-dir "GDAL==$gv"
    fi
    $V/bin/python -m pip install -q -c $V/constraints.txt -r requirements-headless.txt
    echo "[setup] pip install . (the satclassify command) into $V"
    $V/bin/python -m pip install -q -c $V/constraints.txt --force-reinstall --no-deps .
    $V/bin/python -m pip check -q >/dev/null || $V/bin/python -m pip check
    $V/bin/satclassify --help >/dev/null
    if $V/bin/python -c "import qgis" 2>/dev/null; then echo "[setup] $V must not see QGIS" >&2; exit 1; fi
    echo "$s" > $V/.stamp
    echo "[setup] $V ready in $((SECONDS - t0)) s"
  fi
fi
echo "[setup] done ($what)"
