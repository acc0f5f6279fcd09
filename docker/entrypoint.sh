#!/usr/bin/env bash
# Source ROS 2 and the workspace, then run the given command (default: the bimanual launch) as a child whose
# stop is always a SIGINT: `ros2 launch` shuts its nodes down cleanly on SIGINT but exits at once on SIGTERM and
# leaves them running (ros2/launch#666). STOPSIGNAL SIGINT covers `docker stop`; this covers the rest
# (`docker kill -s TERM`, orchestrators, systemd without KillSignal=SIGINT). Paths overridable for tests.
set -eo pipefail
# (no `set -u` while sourcing: the ROS setup scripts read unset variables such as AMENT_TRACE_SETUP_FILES)
# shellcheck disable=SC1090
source "${AHA_WAM_ROS_SETUP:-/opt/ros/${ROS_DISTRO}/setup.bash}"
# shellcheck disable=SC1090
source "${AHA_WAM_WS_SETUP:-/ws/install/setup.bash}"
set -u
[ "$#" -gt 0 ] || set -- ros2 launch aha_wam bimanual.launch.py
set -m                 # the child gets its own process group and default SIGINT (not the ignored one of `&`)
"$@" &
child=$!
trap 'kill -INT "$child" 2>/dev/null || true' INT TERM
while kill -0 "$child" 2>/dev/null; do   # a trapped signal ends `wait` early: wait for the child itself
  wait "$child" || true
done
rc=0
wait "$child" || rc=$?                  # the child's own exit status
exit "$rc"
