#!/usr/bin/env bash
# One-shot, idempotent workspace setup (what `make setup`, `make test` and `make demo` run first):
#   1. check prerequisites and fail with ONE line naming what is missing;
#   2. create .venv and install the pinned requirements (ROS 2 Kilted wheels, torch CPU, mujoco, ...);
#   3. rewrite the build-machine paths baked into the ROS wheels' CMake files;
#   4. apt-get install the system libraries only when missing (libosmesa6 for headless MuJoCo);
#   5. colcon build into install/.
# Each step records a fingerprint of its inputs and is skipped when nothing changed, so a second run
# takes a few seconds. Environment: PYTHON (interpreter to build the venv from, default python3.11 or
# python3), AHA_WAM_SKIP_APT=1 (never call apt-get), AHA_WAM_OFFLINE=1 (skip the index reachability check).
# `setup.sh --check` only checks the prerequisites (including the package index) and exits.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
t0=$(date +%s)

die() { echo "setup: error: $*" >&2; exit 1; }
say() { echo "setup: $*"; }
fingerprint() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }
quiet_pip() {  # pip, minus the harmless "Location ... is ignored" lines some pip configs print per package
  "$venv/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

# ---------------------------------------------------------------- 1. prerequisites (one line each)
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for candidate in python3.11 python3; do command -v "$candidate" >/dev/null 2>&1 && { py=$candidate; break; }; done
fi
[ -n "$py" ] && command -v "$py" >/dev/null 2>&1 || die "no python3 found: install CPython 3.11 (e.g. apt-get install python3 python3-venv)"
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || die "'$py' does not run"
case "$pyver" in
  3.11) ;;
  3.[0-9]|3.10) die "Python $pyver is too old: the ROS 2 Kilted wheels need CPython 3.11 (on Python 3.10 use a full ROS 2 Humble install, see README)";;
  *) die "Python $pyver: the ROS 2 Kilted wheels exist only for CPython 3.11 (set PYTHON=/path/to/python3.11)";;
esac
"$py" -c 'import venv, ensurepip' 2>/dev/null || die "'$py' lacks venv/ensurepip (apt-get install python3-venv)"
for tool in "${CC:-cc}" "${CXX:-c++}"; do
  command -v "$tool" >/dev/null 2>&1 || die "no C/C++ compiler ('$tool' not found): the message packages compile C/C++ (apt-get install build-essential)"
done
command -v cmake >/dev/null 2>&1 || die "cmake not found (apt-get install cmake; >= 3.16)"
command -v git >/dev/null 2>&1 || die "git not found (apt-get install git)"
index_reachable() {  # through pip itself, so the user's pip configuration (index, proxy) is honoured
  "$1" -m pip index versions pip --timeout 15 --retries 1 >/dev/null 2>&1
}
if [ "${1:-}" = "--check" ]; then
  index_reachable "$py" || die "the Python package index is unreachable ('pip index versions pip' failed): check network, proxy or pip config"
  say "prerequisites OK (Python $pyver)"; exit 0
fi

# ---------------------------------------------------------------- 2. venv + pinned requirements
[ -x "$venv/bin/python" ] || { say "creating .venv with $py ($pyver)"; "$py" -m venv "$venv" || die "could not create $venv"; }
"$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die ".venv was made with another Python; remove it (rm -rf .venv) and rerun"
touch "$venv/COLCON_IGNORE"   # the wheels ship package.xml files; colcon must not crawl into the venv
req_files=(requirements/ros.txt requirements/ml.txt requirements/sim.txt requirements/dev.txt)
req_fp=$(fingerprint "${req_files[@]}")
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$req_fp" ]; then
  if [ -z "${AHA_WAM_OFFLINE:-}" ]; then
    index_reachable "$venv/bin/python" \
      || die "the Python package index is unreachable ('pip index versions pip' failed): check network, proxy or pip config"
  fi
  say "installing pinned requirements into .venv (first run: about 2 minutes)"
  quiet_pip install --quiet --disable-pip-version-check "${req_files[@]/#/-r}" \
    || die "pip install of the pinned requirements failed (see the pip output above)"
  echo "$req_fp" > "$venv/.requirements.sha256"
  rm -f "$venv/.build.sha256"
fi

# ---------------------------------------------------------------- 3. ROS wheel CMake paths
fixed=$("$venv/bin/python" scripts/fix_ros_wheel_paths.py "$venv") || die "could not rewrite the ROS wheels' CMake paths"
[ "$fixed" = 0 ] || say "rewrote build-machine Python paths in $fixed CMake files"

# ---------------------------------------------------------------- 4. system packages, only when missing
missing=()
for pkg in libosmesa6; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ -n "${AHA_WAM_SKIP_APT:-}" ]; then
    say "warning: missing system packages ${missing[*]} (AHA_WAM_SKIP_APT set; headless rendering will fail)"
  else
    command -v apt-get >/dev/null 2>&1 || die "system packages ${missing[*]} are missing and apt-get is not available"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    say "apt-get install ${missing[*]}"
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; } \
      || die "apt-get install ${missing[*]} failed (run it by hand as root)"
  fi
fi

# ---------------------------------------------------------------- 5. colcon build (only when sources changed)
build_fp=$( { echo "$req_fp"; cat colcon.meta;
              find src launch config -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.build.sha256" 2>/dev/null)" != "$build_fp" ] || [ ! -f install/local_setup.sh ]; then
  say "colcon build"
  log=$(mktemp)
  if ! bash scripts/build.sh >"$log" 2>&1; then
    tail -40 "$log" >&2; rm -f "$log"
    die "colcon build failed (the end of its log is above; full logs in log/latest_build)"
  fi
  grep -E "^Summary" "$log" | sed 's/^/setup: /' || true
  rm -f "$log"
  echo "$build_fp" > "$venv/.build.sha256"
fi
say "ready in $(( $(date +%s) - t0 )) s — activate with: source scripts/env.sh"
