#!/usr/bin/env bash
# The main job, end to end from a fresh machine: install, build, then train
# on the embedded default data. Arguments go to `lkaseg demo`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/tools/build.sh" >/dev/null
exec "${LKASEG_BUILD_DIR:-$root/build}/lkaseg" demo "$@"
