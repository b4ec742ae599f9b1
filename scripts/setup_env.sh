# Sourced by launch.sh and tests/run.sh: use the active virtual environment, or create .venv, and
# install the given requirement files into it once (a stamp records what was installed).
# Without an NVIDIA GPU, torch is pinned to the CPU build first, so pip does not pull CUDA packages.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${VIRTUAL_ENV:-}" ]]; then
  if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
    echo "[setup] creating $ROOT/.venv"
    "${PYTHON:-python3}" -m venv "$ROOT/.venv"
  fi
  # shellcheck disable=SC1091
  source "$ROOT/.venv/bin/activate"
fi
setup_requirements() {
  local stamp="$VIRTUAL_ENV/.domainlm-requirements" want
  want="$(cd "$ROOT" && cat "$@" | sha256sum | cut -c1-16)"
  if [[ -f "$stamp" ]] && grep -qx "$want" "$stamp"; then
    return 0
  fi
  echo "[setup] installing $* into $VIRTUAL_ENV"
  python -m pip install -q --upgrade pip
  if ! command -v nvidia-smi >/dev/null 2>&1 && ! python -c "import torch" >/dev/null 2>&1; then
    python -m pip install -q "torch==${TORCH_CPU_VERSION:-2.13.0}"
  fi
  (cd "$ROOT" && python -m pip install -q $(printf -- '-r %s ' "$@"))
  echo "$want" >>"$stamp"
}
