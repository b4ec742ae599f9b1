#!/usr/bin/env bash
# Fill .whl/ with wheels, for CPython 3.12 on x86-64 Linux, of the packages a GPU machine without a package
# index needs for scripts/gpu_checks.sh, at the versions of this checkout's environment (.venv, which the
# tests passed with): transformers and its hub client, tokenizers, datasets, accelerate, DeepSpeed (built
# here: it ships only a source archive), pytest with pytest-timeout, and what they need beyond torch, numpy,
# pandas and pyarrow, which such a machine has. About 30 MB. gpu_checks.sh installs .whl/ ahead of what is
# installed.
#
#   bash scripts/gpu_wheels.sh          # after bash tests/run.sh (or launch.sh) made .venv
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
[[ -x "$PY" ]] || { echo "error: no .venv here: run bash tests/run.sh --co -q first" >&2; exit 2; }
NAMES=(transformers tokenizers huggingface-hub hf-xet httpx2 httpcore2 h11 anyio truststore typer
       datasets dill multiprocess xxhash fsspec accelerate safetensors regex
       hjson ninja py-cpuinfo pydantic pydantic-core annotated-types typing-inspection msgpack einops
       pytest pluggy iniconfig pytest-timeout)
mapfile -t PINS < <("$PY" - "${NAMES[@]}" <<'EOF'
import importlib.metadata as md, sys
for name in sys.argv[1:]:
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        pass  # not needed by this version of the stack
EOF
)
rm -rf .whl && mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${PINS[@]}"
"$PY" -m pip wheel -q --no-deps -w .whl "deepspeed==$("$PY" -c 'import importlib.metadata as m; print(m.version("deepspeed"))')"
echo "$(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl: carry it, with .gpu_data, to bash scripts/gpu_checks.sh"
