"""Out of memory in training or evaluation: one line with torch's figures, the switches of this run that
lower the peak, and how to go on. The errors are raised where torch would raise them (the forward pass),
with the messages the CUDA and CPU allocators write."""

import pytest
import torch
from conftest import crash_at_step

from domainlm.errors import UserError
from domainlm.train import main

CUDA_OOM = (
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.11 GiB of which 1.20 GiB "
    "is free. Including non-PyTorch memory, this process has 77.90 GiB memory in use. Of the allocated memory "
    "75.10 GiB is allocated by PyTorch, and 1.30 GiB is reserved by PyTorch but unallocated."
)
CPU_OOM = (
    "[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate "
    "68719476736 bytes. Error code 12 (Cannot allocate memory)"
)


def run(tmp_path, model_dir, records_dir, *flags):
    return main(["--model_name_or_path", str(model_dir), "--train_file", str(records_dir / "train.csv"),
                 "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--disable_tqdm", "true",
                 "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", *flags])  # fmt: skip


def test_a_gpu_out_of_memory_in_training_says_what_to_change_and_how_to_go_on(
    tmp_path, tiny_model_dir, records_dir, monkeypatch
):
    restore = crash_at_step(monkeypatch, 3, torch.OutOfMemoryError(CUDA_OOM))
    with pytest.raises(UserError) as err:
        run(tmp_path, tiny_model_dir, records_dir, "--do_train", "--max_steps", "4", "--save_steps", "2")
    restore()
    out = tmp_path / "out"
    assert str(err.value) == (
        "out of GPU memory while training, in optimizer step 3 (tried to allocate 2.00 GiB, 1.20 GiB free of "
        "79.11 GiB); try --gradient_checkpointing (a third more compute), then --per_device_train_batch_size 2 "
        "--gradient_accumulation_steps 2 (the same effective batch), then --deepspeed ds_config.json (ZeRO-2: "
        "optimizer state partitioned and offloaded to the CPU); run the same command again to continue from the "
        f"last checkpoint in {out} (checkpoint-2)"
    )
    assert (out / "checkpoint-2" / "model.safetensors").is_file()


def test_what_is_on_already_is_not_advised(tmp_path, tiny_model_dir, records_dir, monkeypatch):
    restore = crash_at_step(monkeypatch, 1, torch.OutOfMemoryError(CUDA_OOM))
    with pytest.raises(UserError) as err:
        run(tmp_path, tiny_model_dir, records_dir, "--do_train", "--max_steps", "2", "--gradient_checkpointing",
            "--per_device_train_batch_size", "1", "--save_strategy", "no")  # fmt: skip
    restore()
    assert str(err.value) == (
        "out of GPU memory while training, in optimizer step 1 (tried to allocate 2.00 GiB, 1.20 GiB free of "
        "79.11 GiB); try --deepspeed ds_config.json (ZeRO-2: optimizer state partitioned and offloaded to the "
        f"CPU); no checkpoint in {tmp_path / 'out'} yet to continue from: the same command starts afresh"
    )


def test_the_cpu_allocator_running_out_in_the_final_evaluation(tmp_path, tiny_model_dir, records_dir, monkeypatch):
    """The trained model is saved by then: the line says how to evaluate it alone."""
    from domainlm.trainer import DomainTrainer

    def prediction_step(self, *args, **kwargs):
        raise RuntimeError(CPU_OOM)

    monkeypatch.setattr(DomainTrainer, "prediction_step", prediction_step)
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        run(tmp_path, tiny_model_dir, records_dir, "--do_train", "--do_eval", "--max_steps", "1",
            "--validation_file", str(records_dir / "validation.csv"), "--save_strategy", "no")  # fmt: skip
    assert str(err.value) == (
        "out of memory while evaluating after optimizer step 1 (tried to allocate 68719476736 bytes); try "
        f"--per_device_eval_batch_size 2; the trained model is saved in {out}: evaluate it alone with "
        f"--model_name_or_path {out} --do_eval, without --do_train"
    )
    assert (out / "model.safetensors").is_file()


def test_other_runtime_errors_keep_their_traceback(tmp_path, tiny_model_dir, records_dir, monkeypatch):
    restore = crash_at_step(monkeypatch, 1, RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match=r"^a bug$"):
        run(tmp_path, tiny_model_dir, records_dir, "--do_train", "--max_steps", "1", "--save_strategy", "no")
    restore()


def test_the_cpu_running_out_in_training_is_not_told_to_offload_to_the_cpu(
    tmp_path, tiny_model_dir, records_dir, monkeypatch
):
    restore = crash_at_step(monkeypatch, 1, RuntimeError(CPU_OOM))
    with pytest.raises(UserError) as err:
        run(tmp_path, tiny_model_dir, records_dir, "--do_train", "--max_steps", "2", "--save_strategy", "no")
    restore()
    assert str(err.value) == (
        "out of memory while training, in optimizer step 1 (tried to allocate 68719476736 bytes); try "
        "--gradient_checkpointing (a third more compute), then --per_device_train_batch_size 2 "
        "--gradient_accumulation_steps 2 (the same effective batch); no checkpoint in "
        f"{tmp_path / 'out'} yet to continue from: the same command starts afresh"
    )
