#!/usr/bin/env bash
# Run one command inside the workspace environment: `bash scripts/run.sh aha-wam demo`.
set -euo pipefail
# shellcheck disable=SC1091
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/env.sh"
exec "$@"
