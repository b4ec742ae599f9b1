"""Running out of memory: one line saying where, how much, and what to change, instead of a traceback.

A GPU that runs out of memory raises ``torch.OutOfMemoryError``; the CPU allocator raises a
``RuntimeError`` ("can't allocate memory"). Either one, in training or evaluation, becomes a
``UserError`` naming the phase and optimizer step, torch's own figures, the switches of this run that
would lower the peak (each only if it is not on already: gradient checkpointing, half the batch with
twice the accumulation, ZeRO stages, 16 bits), and how to continue from the last checkpoint.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import TrainingArguments


def is_out_of_memory(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "can't allocate memory" in str(err)
    )


def torch_figures(err: BaseException) -> str:
    """What torch says about the allocation that failed, in a few words: ``tried to allocate 2.00 GiB, 1.20
    GiB free of 79.11 GiB``; empty when its message has no figures."""
    text = " ".join(str(err).split())
    asked = re.search(r"[Tt]ried to allocate ([\d.]+ ?[KMGT]?i?B|\d+ bytes)", text)
    free = re.search(r"total capacity of ([\d.]+ [KMGT]iB) of which ([\d.]+ [KMGT]iB) is free", text)
    parts = []
    if asked:
        parts.append(f"tried to allocate {asked.group(1)}")
    if free:
        parts.append(f"{free.group(2)} free of {free.group(1)}")
    return ", ".join(parts)


def memory_advice(args: TrainingArguments, evaluating: bool, gpu: bool = True) -> list[str]:
    """The switches that lower the peak and are not on yet, the cheapest in results first. DeepSpeed's
    ZeRO stages move memory from the GPUs to the CPU: advised only when a GPU (``gpu``) ran out."""
    from domainlm.guards import zero_stage

    if evaluating:
        batch = args.per_device_eval_batch_size
        return [f"--per_device_eval_batch_size {batch // 2}"] if batch > 1 else []
    out = []
    if not args.gradient_checkpointing:
        out.append("--gradient_checkpointing (a third more compute)")
    batch, accumulation = args.per_device_train_batch_size, args.gradient_accumulation_steps
    if batch > 1:
        out.append(
            f"--per_device_train_batch_size {batch // 2} --gradient_accumulation_steps {accumulation * 2} "
            "(the same effective batch)"
        )
    stage = zero_stage(args) if args.deepspeed else None
    if not gpu:
        return out
    if stage is None:
        out.append("--deepspeed ds_config.json (ZeRO-2: optimizer state partitioned and offloaded to the CPU)")
    elif stage < 3:
        out.append("--deepspeed ds_config_zero3.json (ZeRO-3: parameters partitioned and offloaded too)")
    import torch

    if torch.cuda.is_available() and not (args.bf16 or args.fp16):
        out.append("--bf16 (or --fp16 on GPUs without bfloat16)")
    return out


def out_of_memory_message(
    err: BaseException, trainer: Any, args: TrainingArguments, continuation: str | None = None
) -> str:
    """The one line for ``err``. ``trainer``: None before there is one (the model and data loading);
    ``continuation``: how to go on (from the last checkpoint, or with the model saved), if there is a way."""
    import torch

    gpu = isinstance(err, torch.OutOfMemoryError)
    where = "out of GPU memory" if gpu else "out of memory"
    figures = torch_figures(err)
    if trainer is None:
        zero3 = (
            "--deepspeed ds_config_zero3.json (its parameters partitioned across GPUs and offloaded to the CPU), or "
        )
        return (
            f"{where} before training (loading the model and the data){f' ({figures})' if figures else ''}; "
            f"a model this size needs {zero3 if gpu else ''}a machine with more memory"
        )
    evaluating = not trainer.model.training
    step = trainer.state.global_step
    phase = f"evaluating after optimizer step {step}" if evaluating else f"training, in optimizer step {step + 1}"
    advice = memory_advice(args, evaluating, gpu)
    line = f"{where} while {phase}{f' ({figures})' if figures else ''}"
    line += f"; try {', then '.join(advice)}" if advice else "; a machine with more memory is needed"
    return f"{line}; {continuation}" if continuation else line
