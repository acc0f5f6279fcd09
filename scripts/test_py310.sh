#!/usr/bin/env bash
# The ROS-free test subset on CPython 3.10, the Python of ROS 2 Humble (the deployment target).
#
#   bash scripts/test_py310.sh [pytest args]      (CI runs it from .ci/run after `make test`)
#
# 1. finds a python3.10 (PYTHON310, `python3.10` on PATH, or pyenv's versions/3.10.*); none: skip with the reason;
# 2. builds .venv310 from the project's own requirement files (ml.txt, sim.txt, dev.txt; their
#    `python_version < "3.11"` lines select the 3.10 pins), once per change of those files;
# 3. runs the ROS-free subset under it with the source trees on PYTHONPATH (no ROS, no colcon).
#
# torch: the only cp310 torch 2.13.0 on the package index is the CUDA build (with ~3 GB of nvidia wheels), which
# the project never installs on CPU machines. Its pin is checked by resolving it (metadata only, no download);
# it is installed only from AHA_WAM_PY310_TORCH (a CPU cp310 wheel file, a directory of wheels, or an index URL
# such as https://download.pytorch.org/whl/cpu). Without it, the torch-dependent tests are skipped with that reason.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv310"
t0=$(date +%s)
say() { echo "py310: $*"; }

# ---------------------------------------------------------------- 1. the interpreter
py="${PYTHON310:-}"
if [ -z "$py" ]; then
  if python3.10 -c 'pass' >/dev/null 2>&1; then py=python3.10
  else
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10; do
      [ -x "$candidate" ] && py=$candidate
    done
  fi
fi
if [ -z "$py" ] || ! "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; then
  say "skipped: no CPython 3.10 interpreter found (set PYTHON310=/path/to/python3.10)"
  exit 0
fi

# ---------------------------------------------------------------- 2. the venv, from the project's requirement files
req_files=(requirements/ml.txt requirements/sim.txt requirements/dev.txt)
fp=$( { "$py" -VV; cat "${req_files[@]}"; echo "${AHA_WAM_PY310_TORCH:-}"; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$fp" ]; then
  rm -rf "$venv"
  say "creating .venv310 with $py ($("$py" -V 2>&1))"
  "$py" -m venv "$venv"
  touch "$venv/COLCON_IGNORE"   # colcon must never crawl into a venv
  pip=("$venv/bin/python" -m pip --disable-pip-version-check)
  # 3.10.x ships pip 23, which unpacks every candidate wheel to read its metadata: 5 min to resolve these files
  # here; pip 26 reads the index's metadata files and resolves them in seconds
  "${pip[@]}" install --quiet pip==26.3 2> >(grep -v "is ignored" >&2)
  # every pin of the files except torch (see above); the same lines install on 3.11 in .venv
  grep -v -E '^torch==' requirements/ml.txt > "$venv/ml-without-torch.txt"
  "${pip[@]}" install --quiet -r "$venv/ml-without-torch.txt" -r requirements/sim.txt -r requirements/dev.txt \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  torch_pin=$(grep -E '^torch==' requirements/ml.txt | cut -d';' -f1 | tr -d ' ')
  "${pip[@]}" install --quiet --dry-run --no-deps --ignore-installed --only-binary=:all: "$torch_pin" \
    2> >(grep -v "is ignored" >&2) || { say "error: $torch_pin has no cp310 wheel on the index"; exit 1; }
  say "$torch_pin resolves for cp310 (not installed: the index has only the CUDA build)"
  case "${AHA_WAM_PY310_TORCH:-}" in
    '') ;;
    http*://*) "${pip[@]}" install --quiet --no-deps --index-url "$AHA_WAM_PY310_TORCH" "$torch_pin" ;;
    *) if [ -d "$AHA_WAM_PY310_TORCH" ]; then
         "${pip[@]}" install --quiet --no-deps --no-index --find-links "$AHA_WAM_PY310_TORCH" "$torch_pin"
       else "${pip[@]}" install --quiet --no-deps "$AHA_WAM_PY310_TORCH"; fi ;;
  esac
  echo "$fp" > "$venv/.requirements.sha256"
  say "venv ready in $(( $(date +%s) - t0 )) s"
fi

# ---------------------------------------------------------------- 3. the ROS-free subset
# Needs no ROS and no torch: MuJoCo simulator and scripted experts, the streamer core, runtime safety/hand-over and
# frame clock, offline metrics, bag metadata (written with rosbags, read back), the static Humble/layering checks.
subset=(tests/sim tests/piper/test_piper_trajectory_unit.py tests/piper/test_piper_joint_names.py
        tests/runtime/test_runtime_frame_clock.py
        tests/runtime/test_runtime_handover_safety.py tests/offline/test_offline_metrics.py
        tests/foundation/test_humble_bags.py tests/foundation/test_humble_api.py tests/foundation/test_import_graph.py)
# Needs torch: the models, the context ring, training data/windows, training, distillation and the sim eval loop.
torch_subset=(tests/model tests/context/test_context_ring.py tests/train/test_train_data.py
              tests/train/test_train_workspace.py tests/train/test_train_distill.py tests/train/test_train_eval.py
              tests/runtime/test_runtime_sessions.py)
if "$venv/bin/python" -c 'import torch' >/dev/null 2>&1; then
  subset+=("${torch_subset[@]}")
else
  say "torch-dependent subset skipped (${torch_subset[*]}): no CPU torch wheel for cp310 here;" \
      "set AHA_WAM_PY310_TORCH to a wheel, wheel directory or index URL (e.g. https://download.pytorch.org/whl/cpu)"
fi
existing=()
for t in "${subset[@]}"; do [ -e "$t" ] && existing+=("$t"); done
say "running ${#existing[@]} test paths under $("$venv/bin/python" -V 2>&1)"
rc=0
env -u PYTHONPATH PYTHONPATH="$root/src/aha_wam:$root/src/piper_core:$root/tests" MUJOCO_GL="${MUJOCO_GL:-osmesa}" \
  PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-osmesa}" AHA_WAM_PY310=1 \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "${existing[@]}" "$@" || rc=$?
say "finished in $(( $(date +%s) - t0 )) s (exit $rc)"
exit $rc
