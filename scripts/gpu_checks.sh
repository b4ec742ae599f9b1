#!/usr/bin/env bash
# What only a CUDA GPU can show, in one run of a few minutes: the `gpu`-marked tests (DeepSpeed fp16
# through newly added token rows under ZeRO-2 and ZeRO-3, the overflow guard, bf16 weights, a real CUDA out of memory, the
# training benchmark on CUDA) and the training-throughput benchmark in bf16 on the real postings.
# Logs and JSON go to $OUT (default work/gpu_checks); the exit status is the tests'.
#
#   bash scripts/gpu_checks.sh                         # tiny GPT-2 and gpt2 (124M) benchmarks
#   GPU_CHECKS_MODELS="tiny gpt2 gpt2-xl" bash scripts/gpu_checks.sh
#
# A GPU machine without a package index: bring the missing packages as wheels for its Python in .whl/
# (they go to /tmp/site, ahead of what is installed), and the real postings in .gpu_data/, both
# git-ignored. Without .gpu_data/ the benchmark reads ../shared/data/jobs, else the bundled sample.
#   bash scripts/gpu_wheels.sh      # .whl/: this checkout's pins (transformers, datasets, DeepSpeed, ...), ~30 MB
#   mkdir -p .gpu_data && cp ../shared/data/jobs/linkedin_936.csv .gpu_data/
# then, on the GPU machine, with .whl and .gpu_data carried there: bash scripts/gpu_checks.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-work/gpu_checks}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PATH="/tmp/site/bin:$PATH"  # PATH: the `deepspeed` launcher
fi
{
  date -u +"%Y-%m-%d %H:%M UTC"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  else
    echo "no nvidia-smi"
  fi
  "$PY" - <<'EOF'
import importlib.metadata as md, sys
print("python", sys.version.split()[0])
for name in ("torch", "transformers", "datasets", "accelerate", "deepspeed", "tokenizers", "flash-attn"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "not installed")
EOF
} | tee "$OUT/machine.txt"

START=$SECONDS
"$PY" -m pytest tests -m gpu -p no:cacheprovider -o addopts="" -ra -q --timeout 600 2>&1 | tee "$OUT/gpu_tests.log"
TESTS=${PIPESTATUS[0]}
echo "gpu tests: exit $TESTS after $((SECONDS - START)) s" | tee -a "$OUT/machine.txt"

DATA=()
DATA_FILE="$(compgen -G ".gpu_data/*" | head -n 1 || true)"
[[ -n "$DATA_FILE" ]] && DATA=(--data "$DATA_FILE")
for model in ${GPU_CHECKS_MODELS:-tiny gpt2}; do
  START=$SECONDS
  "$PY" bench/train_throughput.py --model "$model" "${DATA[@]}" --json_out "$OUT/throughput_$model.json" \
    2>&1 | tee "$OUT/throughput_$model.log"
  echo "benchmark $model: exit ${PIPESTATUS[0]} after $((SECONDS - START)) s" | tee -a "$OUT/machine.txt"
done
exit "$TESTS"
