#!/bin/bash
# The campaign's last step: once the queue has trained every run, execute all chapters and build the book from a
# clean committed tree (the store then only serves cached runs and tables, so this takes minutes, not hours), and
# write the queue's job times and the book's cost from an empty store (queue + chapters). It refuses a tree with
# uncommitted changes (the executed chapters would carry a "+dirty" provenance) and a store that still lacks a run
# (the chapter would train it inside the build).
#
#   FERD_ARTIFACTS=$HOME/ferd-artifacts benchmarks/queue/finish.sh
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
PY=${PY:-python}
export OMP_WAIT_POLICY=PASSIVE FERD_ARTIFACTS=${FERD_ARTIFACTS:-$HOME/ferd-artifacts}
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "finish.sh: the tree has uncommitted changes; commit them first" >&2; exit 1
fi
left=$("$PY" benchmarks/queue/status.py --pending | grep -v '^ch[0-9]*_book ' || true)
if [ -n "$left" ]; then
  echo "finish.sh: $(echo "$left" | wc -l) queue jobs are still pending:" >&2; echo "$left" | cut -d' ' -f1 >&2; exit 1
fi
mkdir -p "$HOME/logs"
/usr/bin/time -f "%e s wall" "$PY" -m ferd book --profile cpu 2>&1 | tee "$HOME/logs/book_final.log"
"$PY" benchmarks/queue/times.py > benchmarks/results/queue_times_cpu.md
"$PY" benchmarks/queue/book_cost.py > benchmarks/results/book_cpu.md  # the queue plus these chapter times
echo "finish.sh: done at $(git rev-parse --short HEAD); chapter times are in book/status.csv"
