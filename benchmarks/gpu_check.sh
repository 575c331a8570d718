#!/usr/bin/env bash
# The prepared GPU check (issue 15): a thin wrapper around benchmarks/gpu_check.py, which holds the
# logic and documents the parts. Run from anywhere; extra arguments go to the script, e.g.
#   benchmarks/gpu_check.sh                    # everything; JSON under reports/gpu/
#   benchmarks/gpu_check.sh --device cpu --quick
# The whole check is meant to end within 8 minutes on one H100/H200; the 9-minute timeout below
# stops it if something hangs (the parts' own subprocesses have shorter ones).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
exec timeout --signal=TERM --kill-after=20 "${GPU_CHECK_TIMEOUT_S:-540}" \
    env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" benchmarks/gpu_check.py "$@"
