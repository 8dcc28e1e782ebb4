#!/usr/bin/env bash
# Run every benchmark, print their ratios and write one JSON of the figures.
#
#   benchmarks/run_all.sh                      # -> benchmarks/results/<UTC date>.json
#   benchmarks/run_all.sh /tmp/figures.json    # another path
#   QUICK=1 benchmarks/run_all.sh              # small sizes (a few minutes; figures not comparable)
#   CLASSIFY_RUNS=3 benchmarks/run_all.sh      # the classify benchmark three times (the machine is shared)
#   SKIP=train,quantize benchmarks/run_all.sh  # leave some out (rasterize, classify, quantize, batch, train)
#
# Each benchmark measures its own ratios within one run (the baseline and the tool side by side), so a
# busy machine slows both; the ratios are what docs/performance.md records. Python: .venv-qgis (GDAL, the
# plugin) and SATCLASSIFY_TRAIN_PYTHON or .venv-train (torch) for the training side.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
out=${1:-benchmarks/results/$(date -u +%Y-%m-%d).json}
QPY=${SATCLASSIFY_QGIS_PYTHON:-$ROOT/.venv-qgis/bin/python}
TPY=${SATCLASSIFY_TRAIN_PYTHON:-$ROOT/.venv-train/bin/python}
runs=${CLASSIFY_RUNS:-1}
skip=",${SKIP:-},"
quick=()
[ -n "${QUICK:-}" ] && quick=(--quick)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export QT_QPA_PLATFORM=offscreen
mkdir -p "$(dirname "$out")"

wanted() { [[ "$skip" != *",$1,"* ]]; }

if wanted rasterize; then
  echo "== rasterize (benchmarks/rasterize.py ${quick[*]:-})"
  "$QPY" benchmarks/rasterize.py "${quick[@]}" --workdir "$tmp/r" --json "$tmp/rasterize.json"
  rm -rf "$tmp/r"
fi
if wanted classify; then
  for i in $(seq 1 "$runs"); do
    echo "== classify run $i/$runs (benchmarks/classify.py ${quick[*]:-})"
    "$QPY" benchmarks/classify.py "${quick[@]}" --workdir "$tmp" --json "$tmp/classify_$i.json"
  done
fi
if wanted quantize; then
  size=2048
  [ -n "${QUICK:-}" ] && size=512
  echo "== int8 vs float32 U-Net (benchmarks/quantize.py --size $size)"
  SATCLASSIFY_TRAIN_PYTHON="$TPY" "$QPY" benchmarks/quantize.py --size "$size" --workdir "$tmp" \
    --json "$tmp/quantize.json"
fi
if wanted batch; then
  n=8; size=1024
  [ -n "${QUICK:-}" ] && n=4 && size=256
  echo "== batch classify on Dask, 1 vs 2 workers, faults (benchmarks/batch.py --scenes $n --size $size)"
  "$QPY" benchmarks/batch.py --scenes "$n" --size "$size" --out "$tmp/batch.json" > /dev/null
fi
if wanted train; then
  echo "== training throughput fp32 vs AMP (benchmarks/train.py)"
  "$TPY" benchmarks/train.py --steps "${TRAIN_STEPS:-5}" | tee "$tmp/train.txt"
fi

"$QPY" - "$tmp" "$out" <<'EOF'
import glob, json, os, platform, subprocess, sys, time
tmp, out = sys.argv[1], sys.argv[2]
def load(name):
    p = os.path.join(tmp, name)
    return json.load(open(p)) if os.path.exists(p) else None
try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit = ""
cpu = ""
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
fig = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit, "cpus": os.cpu_count(),
       "cpu": cpu, "platform": platform.platform(), "load_at_end": os.getloadavg()[0],
       "gpu": None, "rasterize": load("rasterize.json"),
       "classify": [load(os.path.basename(p)) for p in sorted(glob.glob(os.path.join(tmp, "classify_*.json")))],
       "quantize": load("quantize.json"), "batch": load("batch.json")}
t = os.path.join(tmp, "train.txt")
fig["train"] = open(t).read().strip().splitlines() if os.path.exists(t) else None
with open(out, "w") as f:
    json.dump(fig, f, indent=1)
print()
print(f"summary ({fig['date']}, commit {commit}, {fig['cpus']} CPU(s), no GPU):")
r = fig["rasterize"]
if r:
    for k in ("centre", "majority", "majority + mixed"):
        if k in r["steps"]:
            print(f"  rasterize {k}: {r['steps'][k]['x_gdal_rasterize']:.2f}x gdal_rasterize")
for i, c in enumerate(fig["classify"]):
    print(f"  classify run {i + 1}: tool/raw " + ", ".join(f"{s['size']}^2 {s['tool_over_raw']:.2f}" for s in c["sizes"]))
q = fig["quantize"]
if q:
    print(f"  int8 vs float32 U-Net: {q['speedup']:.2f}x faster, {q['identical_classes']:.2%} identical classes")
print(f"figures written to {out}")
EOF
