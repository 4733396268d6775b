#!/usr/bin/env bash
# One prepared check on a lent CUDA machine (benchmarks/README.md, "GPU check"): about 6 minutes.
#
#   bash benchmarks/gpu_check.sh          # from the repository root; results under $OUT (or benchmarks/results/gpu)
#
# 1. environment: torch with CUDA and the few packages ferd imports (no registry is reachable there: a
#    missing package must travel as wheels in .whl/, see /work/.library/device/README.md);
# 2. tests/test_cuda.py (smoke distillation and evaluation on CUDA, host syncs) and tests/test_amp.py;
# 3. bench_steps.py --profile paper on CUDA: the paper profile's switches (bf16, channels_last), then float32,
#    then torch.compile of the student, each only while the time budget allows;
# 4. a short table comparing them. Every step has its own timeout, so the script ends inside ~9 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE PYTHONPATH="$PWD:${PYTHONPATH:-}"
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-480}   # seconds after which optional steps are skipped
T0=$SECONDS
left() { echo $((BUDGET - (SECONDS - T0))); }

echo "== 1. environment"
check_env() {
  "$PY" - <<'EOF'
import importlib, sys
import torch
missing = [m for m in ("numpy", "pandas", "tqdm", "filelock", "yaml", "pytest", "psutil") if importlib.util.find_spec(m) is None]
print(f"python {sys.version.split()[0]}  torch {torch.__version__}  cuda {torch.version.cuda}  "
      f"available {torch.cuda.is_available()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, bf16 {torch.cuda.is_bf16_supported()}")
if missing:
    print("missing:", " ".join(missing))
sys.exit(0 if torch.cuda.is_available() and not missing else 1)
EOF
}
if ! check_env 2>&1 | tee "$OUT/env.txt"; then
  echo "environment incomplete: trying wheels in .whl/, then requirements.txt"
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PYTHONPATH"
  else
    "$PY" -m pip install -q -r requirements.txt || echo "pip install failed (no registry reachable?)"
  fi
  check_env 2>&1 | tee "$OUT/env.txt" || { echo "no usable CUDA torch: stopping"; exit 2; }
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv >> "$OUT/env.txt" 2>&1

echo "== 2. CUDA tests ($(left) s left)"
timeout 200 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_cuda.py tests/test_amp.py 2>&1 | tee "$OUT/pytest.log" | tail -15
TESTS=${PIPESTATUS[0]}

echo "== 3. paper-profile timings ($(left) s left)"
bench() {  # name, timeout, extra args
  local name=$1 limit=$2; shift 2
  if [ "$(left)" -lt 60 ]; then echo "skipping $name: budget spent"; return; fi
  [ "$limit" -gt "$(left)" ] && limit=$(left)
  echo "-- $name (limit ${limit}s)"
  timeout "$limit" "$PY" benchmarks/bench_steps.py --profile paper --device cuda --out "$OUT/bench_$name.json" "$@" \
    >> "$OUT/bench.log" 2>&1 || echo "$name: exit $? (see bench.log)"
}
bench paper_fast 240                                              # the paper profile: bf16 + channels_last
bench paper_fp32 120 --student resnet18 --amp off --no-channels-last --skip eval
bench compile 120 --student resnet18 --compile --skip gen,probe,eval --repeats 5

echo "== 4. summary ($((SECONDS - T0)) s)"
"$PY" - "$OUT" <<'EOF' | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
runs = {p.stem.replace("bench_", ""): json.loads(p.read_text()) for p in sorted(out.glob("bench_*.json"))}
if not runs:
    sys.exit("no benchmark finished")
first = next(iter(runs.values()))["meta"]
print(f"{first['device_name']}  torch {first['torch']}  batch {first['batch_size']}")
for name, r in runs.items():
    print(f"ceilings [{name}]: " + ", ".join(f"{k} {c['tflops']:.1f} TFLOP/s" for k, c in r["ceilings"].items()))
rows = {}
for name, r in runs.items():
    for row in r["rows"]:
        rows.setdefault((row["student"], row["piece"]), {})[name] = row
names = list(runs)
print(f"{'student':<12} {'piece':<25}" + "".join(f" {n + ' ms':>16}" for n in names) + f" {'img/s':>9} {'%ceil':>6} {'syncs':>5}")
for (student, piece), by in rows.items():
    ref = by.get(names[0]) or next(iter(by.values()))
    share = ref["share_of_ceiling"]
    print(f"{student:<12} {piece:<25}" + "".join(f" {1e3 * by[n]['median_s']:>16.2f}" if n in by else f" {'-':>16}" for n in names)
          + f" {ref['images_per_s'] or 0:>9.0f} {100 * share if share else 0:>6.1f} {ref['host_syncs'] if ref['host_syncs'] is not None else '-':>5}")
for name, r in runs.items():
    for s, e in r["estimates"].items():
        if "run_h" in e:
            print(f"[{name}] {s}: epoch {e['full_epoch_s']:.0f} s, {e['epochs']} epochs -> {e['run_h']:.1f} h on one GPU")
EOF
echo "tests exit code: $TESTS; files in $OUT"
exit "$TESTS"
