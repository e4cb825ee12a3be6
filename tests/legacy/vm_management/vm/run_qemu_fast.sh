#!/bin/sh
# The spec's VM start script: boots the persistent VexFS test VM in the
# background (ssh on localhost:2222, console in logs/test-kernel-vm_*.log).
# All the work is in `vexfs vm start`; options are passed through
# (e.g. --port, --memory). Stop it with `vexfs vm stop`.
set -e
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
exec "$repo/.venv/bin/vexfs" vm start "$@"
