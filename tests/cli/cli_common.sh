# Sourced by the cli_*.sh tests (sh): the script's $1 is the lkaseg binary
# ($bin); $dir is a temporary folder removed at exit; fail() ends the test.
set -u
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
