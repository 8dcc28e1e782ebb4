#!/usr/bin/env bash
# The QGIS version matrix: run the QGIS-env test suite on newer QGIS releases in Debian chroots.
#
#   bash scripts/qgis_matrix.sh build [SUITE...]   build (or reuse) the chroots
#   bash scripts/qgis_matrix.sh test  [SUITE...]   build if needed, then run tests/core + tests/plugin inside each
#   extra pytest arguments: after --, e.g.  bash scripts/qgis_matrix.sh test trixie -- -k classify -x
#
# Suites:
#   bookworm = Debian 12: QGIS 3.22, GDAL 3.6, numpy 1.24, Python 3.11
#   trixie   = Debian 13: QGIS 3.40 LTR, GDAL 3.10, numpy 2.2, Python 3.13
#   forky    = Debian 14 (testing): QGIS 3.44, GDAL 3.13, numpy 2.4, Python 3.14
# Default: the ones the host is not. The host's own QGIS is tested by scripts/test.sh directly, so a Debian 12
# host runs trixie + forky here, a Debian 13 host bookworm + forky.
#
# How it works (root needed; sudo is used otherwise):
#  - mmdebstrap --variant=apt SUITE DIR MIRROR with the QGIS packages, from the Debian mirror the host's apt
#    already uses (read from /etc/apt/sources.list*; override with SATCLASSIFY_DEBIAN_MIRROR). A Release file
#    past its Valid-Until date (testing suites, snapshots) is accepted.
#  - built into DIR.tmp and renamed when complete, so an interrupted build is never reused; a built chroot
#    (DIR/.satclassify-chroot) is reused. DIR = $SATCLASSIFY_CHROOTS/SUITE (default /var/cache/satclassify/chroots).
#  - the host's CA certificates (/usr/local/share/ca-certificates) are trusted inside, so pip reaches the index
#    exactly as it does on the host; pip's PIP_* environment passes through.
#  - tests run on a copy of the working tree (tracked + untracked, not ignored) in /opt/satclassify/src, set up
#    by the project's own scripts/setup.sh qgis exactly as on a host of that release (so the matrix also proves
#    that setup works on Debian 13 and testing); its .venv-qgis is kept between runs (setup's stamp skips pip).
#  - everything runs in a private mount namespace (proc, sys, dev mounted there vanish when the run ends, even
#    when it is killed).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
CHROOTS=${SATCLASSIFY_CHROOTS:-/var/cache/satclassify/chroots}
# (mount and e2fsprogs: the fault tests mount small tmpfs disks and set chattr +i)
QGIS_PACKAGES="qgis,python3-qgis,qgis-providers,python3-gdal,gdal-bin,python3-venv,python3-pip,ca-certificates,xvfb,xauth,mount,e2fsprogs"

action=${1:-test}; shift || true
suites=(); pytest_args=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; pytest_args=("$@"); break; fi
  suites+=("$1"); shift
done
if [ ${#suites[@]} -eq 0 ]; then
  # every supported Debian QGIS except the host's own (scripts/test.sh tests that one directly)
  host=$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")
  for s in bookworm trixie forky; do
    [ "$s" = "$host" ] && continue
    [ "$s" = bookworm ] && [ "$host" != trixie ] && continue  # 3.22 only needs a chroot on a Debian 13 host
    suites+=("$s")
  done
fi

log() { echo "[matrix] $*"; }

# The Debian archive the host's apt uses (deb822 .sources or one-line format), never a hard-coded host.
host_mirror() {
  if [ -n "${SATCLASSIFY_DEBIAN_MIRROR:-}" ]; then echo "$SATCLASSIFY_DEBIAN_MIRROR"; return; fi
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/{for(i=2;i<=NF;i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' "$f")
    [ -n "$uri" ] && { echo "${uri%/}"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1=="deb" {for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\// && $i ~ /\/debian\/?$/) {print $i; exit}}' "$f")
    [ -n "$uri" ] && { echo "${uri%/}"; return; }
  done
  return 1
}

ensure_mmdebstrap() {
  command -v mmdebstrap >/dev/null 2>&1 && return 0
  log "apt-get install mmdebstrap"
  # wait for another apt (unattended upgrades, a parallel setup) instead of failing on its lock
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q mmdebstrap >/dev/null
}

build_chroot() {  # $1 suite
  local suite=$1 dir="$CHROOTS/$1" mirror
  if [ -f "$dir/.satclassify-chroot" ]; then
    log "$suite: reusing $dir"
    local missing=""
    for p in ${QGIS_PACKAGES//,/ }; do
      $SUDO chroot "$dir" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then  # a chroot built by an older version of this script
      log "$suite: apt-get install$missing"
      in_chroot "$dir" "apt-get -o Acquire::Check-Valid-Until=false update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends$missing >/dev/null" || return 1
    fi
    return 0
  fi
  ensure_mmdebstrap || { log "$suite: cannot install mmdebstrap"; return 1; }
  mirror=$(host_mirror) || { log "no Debian mirror found in /etc/apt (set SATCLASSIFY_DEBIAN_MIRROR)"; return 1; }
  $SUDO mkdir -p "$CHROOTS"
  $SUDO rm -rf "$dir.tmp"
  log "$suite: mmdebstrap into $dir (QGIS packages, a few minutes)"
  local t0=$SECONDS
  if ! $SUDO mmdebstrap --variant=apt --quiet \
      --aptopt='Acquire::Check-Valid-Until "false"' \
      --aptopt='APT::Install-Recommends "false"' \
      --include="$QGIS_PACKAGES" \
      "$suite" "$dir.tmp" "$mirror" > "$CHROOTS/$suite.build.log" 2>&1; then
    tail -20 "$CHROOTS/$suite.build.log"; log "$suite: mmdebstrap failed (log: $CHROOTS/$suite.build.log)"
    $SUDO rm -rf "$dir.tmp"; return 1
  fi
  # Trust the host's CA certificates (pip goes through the same network path as on the host).
  if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    $SUDO cp /usr/local/share/ca-certificates/*.crt "$dir.tmp/usr/local/share/ca-certificates/"
    $SUDO chroot "$dir.tmp" update-ca-certificates >/dev/null 2>&1 || true
  fi
  $SUDO cp -L /etc/resolv.conf "$dir.tmp/etc/resolv.conf" 2>/dev/null || true
  $SUDO chroot "$dir.tmp" sh -c 'dpkg-query -W -f="\${Version}" qgis' > "$dir.tmp/.satclassify-chroot"
  $SUDO mv "$dir.tmp" "$dir"
  log "$suite: built in $((SECONDS - t0)) s (QGIS $(cat "$dir/.satclassify-chroot"))"
}

# Run a command inside the chroot with proc/sys/dev in a private mount namespace.
in_chroot() {  # $1 dir, rest: command string
  local dir=$1; shift
  $SUDO unshare --mount --propagation private -- sh -c '
    d=$1; shift
    mount -t proc proc "$d/proc" && mount -t sysfs sys "$d/sys" && mount --rbind /dev "$d/dev" || exit 97
    cp -L /etc/resolv.conf "$d/etc/resolv.conf" 2>/dev/null
    exec chroot "$d" /usr/bin/env -u PIP_FIND_LINKS -u SATCLASSIFY_TRAIN_PYTHON HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"
  ' sh "$dir" bash -c "$*"
}

copy_tree() {  # $1 suite: the working tree (tracked + untracked, not ignored) into the chroot; its venv is kept
  local dir="$CHROOTS/$1" src="$CHROOTS/$1/opt/satclassify/src"
  $SUDO mkdir -p "$src"
  $SUDO find "$src" -mindepth 1 -maxdepth 1 ! -name .venv-qgis -exec rm -rf {} +
  if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
      | (cd "$ROOT" && xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) \
      | tar -C "$ROOT" --null -T - -cf - | $SUDO tar -C "$src" -xf -
  else
    tar -C "$ROOT" --exclude='./.venv-*' --exclude=./.git -cf - . | $SUDO tar -C "$src" -xf -
  fi
}

run_tests() {  # $1 suite: the project's own setup (scripts/setup.sh qgis, as on a host of that release), then
  local dir="$CHROOTS/$1" args  # tests/core + tests/plugin
  copy_tree "$1"
  args=$(printf ' %q' "${pytest_args[@]}")
  [ ${#pytest_args[@]} -gt 0 ] || args=""
  log "$1: QGIS $(cat "$dir/.satclassify-chroot"): scripts/setup.sh qgis, then pytest tests/core tests/plugin"
  in_chroot "$dir" "
    set -o pipefail
    cd /opt/satclassify/src
    bash scripts/setup.sh qgis | grep -v '^WARNING: Location' || exit 1
    export QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR=/tmp/runtime-root PYTHONDONTWRITEBYTECODE=1
    export SATCLASSIFY_QGIS_MATRIX=$1
    mkdir -p \$XDG_RUNTIME_DIR && chmod 700 \$XDG_RUNTIME_DIR
    .venv-qgis/bin/python -m pytest tests/core tests/plugin -p no:cacheprovider $args
  "
}

status=0
case "$action" in
  build|test) ;;
  *) echo "usage: $0 build|test [SUITE...] [-- PYTEST_ARGS]"; exit 2 ;;
esac
# Build all chroots first, in parallel (downloads dominate), then set up and test one after another.
# mmdebstrap is installed once, before: two parallel builds installing it race for apt's lock.
for s in "${suites[@]}"; do
  if [ ! -f "$CHROOTS/$s/.satclassify-chroot" ]; then ensure_mmdebstrap || { log "cannot install mmdebstrap"; exit 1; }; break; fi
done
pids=()
for s in "${suites[@]}"; do build_chroot "$s" & pids+=($!); done
for i in "${!pids[@]}"; do wait "${pids[$i]}" || { log "${suites[$i]}: build failed"; status=1; }; done
[ $status -eq 0 ] || exit $status
for s in "${suites[@]}"; do
  if [ "$action" = test ]; then
    t0=$SECONDS
    if run_tests "$s"; then log "$s: passed ($((SECONDS - t0)) s)"; else log "$s: FAILED ($((SECONDS - t0)) s)"; status=1; fi
  fi
done
exit $status
