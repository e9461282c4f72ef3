#!/usr/bin/env bash
# run_demo.sh — set up (scripts/bootstrap.sh) and run shardopt's main job: the sharded
# training example when present, else the tensor demo.  Arguments go to the script.
set -uo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh || exit 1

if [ -f examples/train_sharded.py ]; then
    exec "$PY" examples/train_sharded.py "$@"
fi
exec "$PY" examples/tensor_demo.py "$@"
