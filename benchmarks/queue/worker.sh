#!/bin/bash
# One worker of the run queue: pops the next line of $HOME/queue/jobs.txt (under a lock) and runs it with the
# `ferd` CLI from $SNAP, a clean checkout of the commit the book will be executed from (the runs' keys include
# a version of the code, so they must be trained by that code). Logs go to $HOME/logs/q/. Each line is
# "<name> <ferd CLI arguments>"; a `book` line executes chapters (no build) into a scratch folder, which fills the
# store with what only a chapter computes (chapter 3's custom rule, chapter 8's budget sweep). Finished runs and
# evaluations are cached in $FERD_ARTIFACTS, so re-running the queue after an interruption resumes every run from
# its last checkpoint. The worker reads OMP_NUM_THREADS=1: one core per worker, chapters included.
#
#   python benchmarks/queue/make_jobs.py > $HOME/queue/jobs.txt
#   git worktree add /tmp/final <commit>
#   SNAP=/tmp/final nohup benchmarks/queue/worker.sh 1 &   SNAP=/tmp/final nohup benchmarks/queue/worker.sh 2 &
SNAP=${SNAP:?the checkout to run from}
PY=${PY:-python}
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 FERD_JOBS=1 FERD_ARTIFACTS=${FERD_ARTIFACTS:-$HOME/ferd-artifacts}
mkdir -p "$HOME/logs/q" "$HOME/queue"
# The CPU goes into every start line: a run trained again on another kind of CPU gives another student (issue 11).
cpu=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null | head -1)
cd "$SNAP"
while true; do
  line=$(flock "$HOME/queue/lock" bash -c 'l=$(head -1 "$HOME/queue/jobs.txt"); [ -n "$l" ] && sed -i 1d "$HOME/queue/jobs.txt"; echo "$l"')
  [ -z "$line" ] && break
  name=${line%% *}; args=${line#* }
  case "$args" in
    book\ *) extra=(--no-build --out "$HOME/queue/book-out") ;;
    *) extra=(--quiet) ;;
  esac
  echo "$(date +%H:%M:%S) start $name on ${cpu:-unknown CPU}" >> "$HOME/logs/q/worker$1.log"
  /usr/bin/time -f "%e s wall" "$PY" -m ferd $args "${extra[@]}" > "$HOME/logs/q/$name.log" 2>&1
  echo "$(date +%H:%M:%S) end $name rc=$?" >> "$HOME/logs/q/worker$1.log"
done
