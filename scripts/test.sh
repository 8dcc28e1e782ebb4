#!/usr/bin/env bash
# Set up both environments (idempotent) and run the whole test suite:
#   ruff                      : lint and `ruff format --check` (pyproject.toml), fails on findings
#   mypy                      : type check of satclassify_plugin/core and training/ (pyproject.toml), fails on findings
#   tests/core + tests/plugin : QGIS env (.venv-qgis, the host's real QGIS headless: 3.22 on Debian 12);
#                               tests/core/headless also runs the satclassify command installed with pip into
#                               .venv-headless (no QGIS), which setup.sh makes (docs/headless.md)
#   tests/training            : training env (.venv-train, torch)
#   QGIS version matrix       : tests/core + tests/plugin again on the other Debian QGIS releases, in chroots
#                               (scripts/qgis_matrix.sh: 3.40 LTR and 3.44 on a Debian 12 host; built once,
#                               reused). SATCLASSIFY_MATRIX=0 skips it (quick local runs).
# Extra arguments go to every pytest run (e.g. -k classify, -x).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/setup.sh all || exit 1
export QT_QPA_PLATFORM=offscreen
export SATCLASSIFY_TRAIN_PYTHON="$ROOT/.venv-train/bin/python"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/runtime-$(id -u)}"; mkdir -p "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR"
status=0
echo "=== ruff (pyproject.toml): lint and format"
.venv-qgis/bin/ruff check . || status=1
.venv-qgis/bin/ruff format --check . || status=1
echo "=== mypy (pyproject.toml [tool.mypy]): satclassify_plugin/core training"
.venv-qgis/bin/python -m mypy || status=1
qgis_version=$(/usr/bin/python3 -c 'from qgis.core import Qgis; print(Qgis.QGIS_VERSION)' 2>/dev/null)
echo "=== QGIS 4 API check (tests/plugin/test_qgis4_api.py): what it checks"
.venv-qgis/bin/python scripts/qgis4_api.py report || status=1
echo "=== headless env (.venv-headless, no QGIS): the satclassify command, byte-identical to the core's classify"
.venv-qgis/bin/python -m pytest tests/core/headless/test_headless_env.py -p no:cacheprovider -rs "$@" || status=1
echo "=== QGIS env (host QGIS $qgis_version): tests/core tests/plugin"
.venv-qgis/bin/python -m pytest tests/core tests/plugin --ignore=tests/core/headless/test_headless_env.py "$@" || status=1
echo "=== training env: tests/training"
.venv-train/bin/python -m pytest tests/training -p no:cacheprovider "$@" || status=1
if [ "${SATCLASSIFY_MATRIX:-1}" != 0 ]; then
  echo "=== QGIS version matrix (chroots): tests/core tests/plugin"
  if [ $# -gt 0 ]; then bash scripts/qgis_matrix.sh test -- "$@"; else bash scripts/qgis_matrix.sh test; fi || status=1
fi
exit $status
