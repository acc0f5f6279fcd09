#!/usr/bin/env bash
# colcon build of the workspace into install/ (symlink install: Python edits are live without a rebuild;
# new packages, entry points, messages or data files need one). Serialised with a lock so that parallel
# callers (make targets, helpers, tests) never build over each other.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck disable=SC1091
source scripts/env.sh
exec 9>"$root/.venv/.colcon.lock"
flock 9
colcon build --base-paths src --symlink-install \
  --event-handlers console_cohesion- summary+ status- \
  --cmake-args -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=OFF "$@"
