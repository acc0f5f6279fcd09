# Source this file (bash or zsh) to use the workspace: `source scripts/env.sh`.
# It activates .venv (ROS 2 Kilted from PyPI wheels, torch, mujoco, ...) as the ROS underlay and
# overlays the colcon install/ tree, like `source /opt/ros/<distro>/setup.bash && source install/setup.bash`
# on a full ROS install.
if [ -n "${BASH_SOURCE:-}" ]; then _aha_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
else _aha_root="$(cd "$(dirname "${(%):-%x}")/.." && pwd)"; fi

if [ ! -x "$_aha_root/.venv/bin/python" ]; then
  echo "aha_wam env: $_aha_root/.venv is missing; run 'make setup' first" >&2
  return 1 2>/dev/null || exit 1
fi
# colcon's and venv's scripts read unset variables; tolerate them even when the caller uses `set -u`.
case $- in *u*) _aha_nounset=1; set +u;; *) _aha_nounset=;; esac
VIRTUAL_ENV_DISABLE_PROMPT=${VIRTUAL_ENV_DISABLE_PROMPT:-1}
. "$_aha_root/.venv/bin/activate"

# The wheels install ROS into the venv prefix; ament and CMake must search it like /opt/ros/<distro>.
case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *)
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}";; esac
case ":${CMAKE_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *)
  export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}";; esac

if [ -f "$_aha_root/install/local_setup.sh" ]; then
  # colcon's local_setup.sh needs COLCON_CURRENT_PREFIX when it is not sourced from its own directory.
  COLCON_CURRENT_PREFIX="$_aha_root/install" . "$_aha_root/install/local_setup.sh"
fi

# ament_python puts executables in lib/<package> (for `ros2 run`); the `aha-wam` CLI also belongs on PATH.
case ":$PATH:" in *":$_aha_root/install/aha_wam/lib/aha_wam:"*) ;; *)
  export PATH="$_aha_root/install/aha_wam/lib/aha_wam:$PATH";; esac

export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
export MUJOCO_GL=${MUJOCO_GL:-osmesa}          # headless offscreen rendering (libosmesa6)
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-osmesa}
export AHA_WAM_ROOT="$_aha_root"
[ -n "$_aha_nounset" ] && set -u
unset _aha_root _aha_nounset
