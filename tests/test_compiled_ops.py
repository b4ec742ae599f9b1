"""A compiled-op build lock left by a killed process stops a DeepSpeed run with one line, not a silent hang."""

import os
import time

import pytest

from domainlm.args import parse_args
from domainlm.compiled_ops import STALE_AFTER_S, check_build_locks, stale_build_locks
from domainlm.errors import UserError


def make_lock(path, age_s: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_only_locks_older_than_the_limit_count_oldest_first(tmp_path):
    old = make_lock(tmp_path / "py311_cpu" / "deepspeed_shm_comm" / "lock", 3600)
    older = make_lock(tmp_path / "cpu_adam" / "lock", 7200)
    make_lock(tmp_path / "py311_cpu" / "cpu_adam" / "lock", STALE_AFTER_S - 60)  # a build under way
    make_lock(tmp_path / "py311_cpu" / "deepspeed_shm_comm" / ".ninja_lock", 7200)  # ninja's, not torch's
    found = stale_build_locks(tmp_path, now=time.time())
    assert [lock for lock, _ in found] == [older, old]
    assert [round(age / 60) for _, age in found] == [120, 60]


def test_no_lock_no_error(tmp_path):
    make_lock(tmp_path / "py311_cpu" / "cpu_adam" / "lock", 10)
    check_build_locks(tmp_path)
    check_build_locks(tmp_path / "missing")


def test_a_deepspeed_run_refuses_to_wait_on_a_stale_lock(tmp_path, monkeypatch, tiny_model_dir, records_dir):
    lock = make_lock(tmp_path / "deepspeed_shm_comm" / "lock", 1800)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"),
            "--do_train", "--output_dir", str(tmp_path / "out")]  # fmt: skip
    message = (
        f"{lock} is 30 minutes old: a build of the deepspeed_shm_comm op was interrupted, and DeepSpeed would wait "
        "for it forever; if no other run is compiling it, delete that file and run again"
    )
    with pytest.raises(UserError) as err:
        parse_args([*argv, "--deepspeed", "ds_config.json"])
    assert str(err.value) == message
    with pytest.raises(UserError) as err:
        parse_args([*argv, "--deepspeed=ds_config.json"])
    assert str(err.value) == message
    assert parse_args(argv)[3].deepspeed is None  # without DeepSpeed the lock does not matter
