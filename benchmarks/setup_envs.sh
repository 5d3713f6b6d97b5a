#!/usr/bin/env bash
# Create the virtualenvs of the benchmarks' peers: the queues of benchmarks/bench_queue.py and
# Ray for benchmarks/bench_runs.py.
#
# The peers cannot share one environment: arq pins redis-py < 6, while Celery/kombu 5.7 needs
# redis-py >= 6.4 (and SAQ < 8, BullMQ-py >= 6.2). So:
#   .venv-bench-a : arq                       (redis-py 5.x)
#   .venv-bench-b : rq, saq, celery, bullmq   (redis-py 7.x)
#   .venv-bench-ray : Ray 2.60 (bench_runs.py's second DAG peer; its own env: its pinned
#                     dependencies stay out of the project's .venv)
# The IronForge side runs in the project's own .venv. Re-running this script upgrades in place.
#
# Usage: benchmarks/setup_envs.sh [a|b|ray]...   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

# Pinned so that figures stay comparable from one run to the next.
REQS_A=("arq==0.28.0" "redis[hiredis]>=5.0,<6" "psutil>=5.9")
REQS_B=("rq==2.12.0" "saq[redis]==0.26.4" "celery[redis]==5.7.0" "bullmq==3.4.4"
        "redis[hiredis]>=6.4,<8" "psutil>=5.9")
REQS_RAY=("ray==2.60.*" "psutil>=5.9")

make_env() {  # make_env DIR REQ...
    local dir="$1"; shift
    if [ ! -x "$dir/bin/python" ]; then
        "$PYTHON" -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install -q --upgrade pip
    "$dir/bin/python" -m pip install -q "$@"
    echo "ready: $dir ($("$dir/bin/python" -c 'import importlib.metadata as m
print(", ".join(f"{d} {m.version(d)}" for d in ("redis", "ray") if any(
    x.metadata["Name"] == d for x in m.distributions())))'))"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(a b ray)
for t in "${targets[@]}"; do
    case "$t" in
        a) make_env .venv-bench-a "${REQS_A[@]}" ;;
        b) make_env .venv-bench-b "${REQS_B[@]}" ;;
        ray) make_env .venv-bench-ray "${REQS_RAY[@]}" ;;
        *) echo "unknown env '$t': use a, b or ray" >&2; exit 2 ;;
    esac
done
