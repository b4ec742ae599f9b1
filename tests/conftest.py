"""Shared fixtures: real tokenizers, real tiny GPT-2 folders, real CSV files on disk."""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from domainlm.distributed import free_port  # noqa: F401  (the tests' free port, from conftest)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "data" / "jobs_sample.csv"


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests need CUDA: skipped, with the reason, on a machine without it."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (marker gpu)")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Two threads on a busy two-core machine run tiny models 10-20x slower than one: a module that
    uses this (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``) runs on one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sample_rows(n: int, words: int = 40) -> list[dict[str, str]]:
    """The first ``n`` bundled postings, bodies cut to ``words`` words so tiny models fit them."""
    with open(SAMPLE, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    return [{**r, "text": " ".join(r["text"].split(" ")[:words])} for r in rows]


def record_rows(n: int, words: int = 40) -> list[dict[str, str]]:
    from domainlm.template import format_record

    return [{"text": format_record(r["title"], r["keywords"], r["text"])} for r in sample_rows(n, words)]


def write_text_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    from domainlm.tables import write_csv

    write_csv(path, rows, ["text"])
    return path


@pytest.fixture(scope="session")
def bpe_tokenizer_dir(tmp_path_factory) -> Path:
    """A byte-level BPE tokenizer (500 tokens) trained on the bundled sample, saved to a folder."""
    from domainlm.tokenizer import train_bpe_tokenizer

    texts = [r["text"] for r in record_rows(240, 200)]
    tok = train_bpe_tokenizer(texts, vocab_size=500, model_max_length=256)
    out = tmp_path_factory.mktemp("tokenizer")
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, bpe_tokenizer_dir) -> Path:
    """A 2-layer GPT-2 (32 wide, 256 positions) with its tokenizer: a local 'pretrained' folder."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(bpe_tokenizer_dir)
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2,
        n_embd=32,
        n_head=2,
        n_positions=256,
        vocab_size=len(tok),
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    out = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def records_dir(tmp_path_factory) -> Path:
    """train.csv (48 record rows) and validation.csv (8 rows) of short postings."""
    out = tmp_path_factory.mktemp("records")
    rows = record_rows(56, 30)
    write_text_csv(out / "train.csv", rows[:48])
    write_text_csv(out / "validation.csv", rows[48:])
    return out


def forbid(monkeypatch, *targets: tuple[object, str]) -> None:
    """Each ``(module, name)`` fails the test when called: work that a check must come before."""

    def started(*args, **kwargs):
        raise AssertionError("work started before the check")

    for module, name in targets:
        monkeypatch.setattr(module, name, started)


def crash_at_step(monkeypatch, step: int, error: BaseException) -> Callable[[], None]:
    """The models that ``run_clm`` loads from now on raise ``error`` in the forward pass of training step
    ``step`` (a power cut, a Ctrl-C). Returns the function that makes the next loads normal again."""
    import domainlm.modeling

    real = domainlm.modeling.load_model

    def load_and_crash(*args, **kwargs):
        model = real(*args, **kwargs)
        calls = {"n": 0}

        def hook(module, inputs, output):
            calls["n"] += module.training
            if calls["n"] == step:
                raise error
            return output

        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(domainlm.modeling, "load_model", load_and_crash)
    return lambda: monkeypatch.setattr(domainlm.modeling, "load_model", real)


def run_process(cmd: list[str], *, timeout: float = 900, **popen_kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` in a session of its own, with a time limit.

    On the limit, or when the test is interrupted, the whole process tree is killed: a launcher's ranks
    included, which would otherwise keep the output pipes open and the test waiting for good. The
    failure then names the command, the time and any stale compiled-op build lock (the usual reason a
    DeepSpeed run waits without end).
    """
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **popen_kwargs
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException as err:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        if isinstance(err, subprocess.TimeoutExpired):
            from domainlm.compiled_ops import stale_build_locks

            locks = [str(lock) for lock, _ in stale_build_locks()]
            pytest.fail(
                f"{' '.join(cmd)} still ran after {timeout:.0f} s (stale build locks: {locks or 'none'}):\n"
                f"{stdout[-3000:]}\n{stderr[-3000:]}"
            )
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def script_env(**extra: str) -> dict[str, str]:
    """The environment of a script a test runs: this one, offline, with the project first on ``PYTHONPATH``.

    A ``PYTHONPATH`` already set is kept behind the project (packages installed with ``pip --target``, as
    on a GPU machine without a package index); a TensorBoard folder of the test process is not inherited.
    """
    env = {k: v for k, v in os.environ.items() if k != "TENSORBOARD_LOGGING_DIR"}
    env.update(PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    env.update(HF_HUB_OFFLINE="1", **extra)
    return env


def run_command(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a command; on failure the assertion shows the end of its output."""
    proc = run_process(cmd, cwd=cwd, env=script_env(), timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


PYTHON = sys.executable


def deepspeed_launcher() -> str:
    """The ``deepspeed`` launcher beside this interpreter, else the first on ``PATH`` (DeepSpeed installed
    with ``pip --target`` elsewhere, as ``scripts/gpu_checks.sh`` does on a machine without a package index)."""
    beside = Path(sys.executable).parent / "deepspeed"
    return str(beside) if beside.exists() else shutil.which("deepspeed") or str(beside)


DEEPSPEED = deepspeed_launcher()
