#!/usr/bin/env bash
# Install the test dependencies into the project's environment (the active venv, or .venv) and run
# the whole suite: lint, then pytest. Extra arguments go to pytest, e.g. `bash tests/run.sh -m "not slow"`.
# Tests run in one worker per core (at most 4; `-n 0` runs them in this process): most of a DeepSpeed
# launcher test is process start-up and imports, so two workers on two cores overlap the waits (docs/benchmarks.md: 5 min for the suite).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
START=$SECONDS
source scripts/setup_env.sh
setup_requirements requirements.txt requirements-keywords.txt requirements-test.txt
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check .
# DeepSpeed's CPU ops compile here, once, rather than in the first test runs of two workers at once
command -v nvidia-smi >/dev/null 2>&1 || python -m domainlm.compiled_ops
python -m pytest tests -n auto --maxprocesses 4 --dist worksteal "$@"
echo "tests/run.sh finished in $((SECONDS - START))s"
