"""Disk and divergence guards: exact checkpoint estimates, refusal before step one, NaN stops the run."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from domainlm import guards
from domainlm.errors import UserError
from domainlm.guards import (
    CHECKPOINT_EXTRA_BYTES,
    CheckpointSize,
    DivergenceGuard,
    TrainingDiverged,
    checkpoints_at_once,
    count_saves,
    estimate_checkpoint,
    last_complete_checkpoint,
)
from domainlm.train import main

# The tiny GPT-2 of conftest: vocab 501, 32 wide, 256 positions, 2 blocks (12 d^2 + 13 d each), final norm.
V, D, POS, L = 501, 32, 256, 2
P = V * D + POS * D + L * (12 * D * D + 13 * D) + 2 * D  # 49,696 (the output head is tied to wte)


def common(tmp_path, records_dir, *extra):
    return ["--train_file", str(records_dir / "train.csv"), "--do_train", "--output_dir", str(tmp_path / "out"),
            "--per_device_train_batch_size", "8", "--report_to", "none", "--disable_tqdm", "true", "--seed", "1",
            "--warmup_steps", "0", *extra]  # fmt: skip


def load(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


# --- disk --------------------------------------------------------------------------------------------------


def test_checkpoint_estimate_by_stage_and_precision():
    assert P == 49_696
    # Trainer without DeepSpeed: fp32 weights, AdamW's two fp32 moments
    assert estimate_checkpoint(P, P, None) == CheckpointSize(4 * P, 8 * P)
    assert estimate_checkpoint(P, P, None).total == 12 * P + CHECKPOINT_EXTRA_BYTES
    # only trainable parameters have optimizer state; --save_only_model has none
    assert estimate_checkpoint(P, 1000, None) == CheckpointSize(4 * P, 8000)
    assert estimate_checkpoint(P, P, None, save_only_model=True) == CheckpointSize(4 * P, 0)
    # ZeRO-2 in fp16: model.safetensors + mp_rank_00_model_states.pt (2 bytes each), fp32 master + moments
    assert estimate_checkpoint(P, P, 2, half_precision=True) == CheckpointSize(4 * P, 12 * P)
    assert estimate_checkpoint(P, P, 2) == CheckpointSize(8 * P, 12 * P)
    # ZeRO-3 writes no module states; the weights only when it gathers them on save
    assert estimate_checkpoint(P, P, 3) == CheckpointSize(4 * P, 12 * P)
    assert estimate_checkpoint(P, P, 3, half_precision=True, zero3_saves_weights=False) == CheckpointSize(0, 12 * P)
    # GPT2-XL under ZeRO-2 in fp16: about 25 GB a checkpoint (PLATFORM.md measured 28-31 GB with fp32 weights)
    xl = 1_557_611_200
    assert estimate_checkpoint(xl, xl, 2, half_precision=True).total == 16 * xl + CHECKPOINT_EXTRA_BYTES


def test_estimate_matches_the_files_a_real_checkpoint_holds(tmp_path, tiny_model_dir, records_dir):
    main(["--model_name_or_path", str(tiny_model_dir), "--max_steps", "1", "--save_steps", "1",
          *common(tmp_path, records_dir)])  # fmt: skip
    ckpt = tmp_path / "out" / "checkpoint-1"
    size = estimate_checkpoint(P, P, None)
    weights, optimizer = (ckpt / "model.safetensors").stat().st_size, (ckpt / "optimizer.pt").stat().st_size
    # the estimate is the tensors' bytes; the files add a header of a few KB
    assert size.weights <= weights < size.weights + 16_000
    assert size.optimizer <= optimizer < size.optimizer + 32_000
    everything = sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file())
    assert everything < size.total


def test_saves_counted_from_the_schedule_and_the_limit(tmp_path):
    from transformers import TrainerState, TrainingArguments

    def args(**kw):
        return TrainingArguments(output_dir=str(tmp_path), report_to="none", **kw)

    state = TrainerState(max_steps=7, global_step=0, save_steps=2)
    assert count_saves(args(save_steps=2), state) == 4  # steps 2, 4, 6 and the last, 7
    assert count_saves(args(save_steps=2), TrainerState(max_steps=7, global_step=4, save_steps=2)) == 2  # 6, 7
    assert count_saves(args(save_steps=2), TrainerState(max_steps=8, global_step=0, save_steps=2)) == 4
    assert count_saves(args(save_strategy="no"), state) == 0
    epochs = TrainerState(max_steps=30, global_step=0, num_train_epochs=3)
    assert count_saves(args(save_strategy="epoch"), epochs) == 3
    # the Trainer deletes old checkpoints after writing a new one: limit + 1 at once
    assert checkpoints_at_once(args(save_total_limit=2), saves=4, existing=0) == 3
    assert checkpoints_at_once(args(save_total_limit=2), saves=4, existing=2) == 1
    assert checkpoints_at_once(args(save_total_limit=2), saves=1, existing=0) == 1
    assert checkpoints_at_once(args(), saves=4, existing=5) == 4


def test_disk_guard_refuses_before_step_one_and_the_threshold_is_exact(tmp_path, tiny_model_dir, records_dir,
                                                                        monkeypatch):  # fmt: skip
    # 2 steps, a checkpoint each: 2 checkpoints of 12 bytes/param + extras, and the final fp32 weights
    needed = 2 * (12 * P + CHECKPOINT_EXTRA_BYTES) + 4 * P
    assert needed == 18_168_704
    argv = ["--model_name_or_path", str(tiny_model_dir), "--max_steps", "2", "--save_steps", "1",
            *common(tmp_path, records_dir)]  # fmt: skip
    seen = []

    def free(path):
        seen.append(Path(path))
        return needed - 1

    monkeypatch.setattr(guards, "free_bytes", free)
    with pytest.raises(UserError) as err:
        main(argv)
    assert str(err.value) == (
        f"not enough disk space: {tmp_path / 'out'} needs about 18.2 MB and its filesystem has 18.2 MB free: "
        "2 checkpoints at once of 9.0 MB each (weights 198.8 KB, optimizer state 397.6 KB, up to 8.4 MB of tokenizer "
        "and run state) and the final model "
        "(198.8 KB); free some space, lower --save_total_limit, raise --save_steps, or pass --check_disk_space "
        "false if the estimate is wrong"
    )
    assert seen == [tmp_path / "out"]
    assert not list((tmp_path / "out").glob("checkpoint-*"))  # refused before the first step
    monkeypatch.setattr(guards, "free_bytes", lambda path: needed)
    main(argv)
    assert (tmp_path / "out" / "checkpoint-2").is_dir()
    # and the switch turns the check off
    monkeypatch.setattr(guards, "free_bytes", lambda path: 0)
    main([*argv, "--check_disk_space", "false", "--output_dir", str(tmp_path / "unchecked")])
    assert (tmp_path / "unchecked" / "checkpoint-2").is_dir()


# --- divergence ----------------------------------------------------------------------------------------------


def nan_at_training_forward(monkeypatch, n: int) -> None:
    """The model's n-th training forward pass (1-based) returns NaN, as a bad batch or an overflow would."""
    import domainlm.modeling

    real = domainlm.modeling.load_model

    def load_model(*args, **kwargs):
        model = real(*args, **kwargs)
        calls = {"n": 0}

        def hook(module, inputs, output):
            if module.training:
                calls["n"] += 1
                if calls["n"] == n:
                    return output * float("nan")
            return output

        model.transformer.ln_f.register_forward_hook(hook)
        return model

    monkeypatch.setattr(domainlm.modeling, "load_model", load_model)


def test_nan_loss_stops_before_the_update_and_keeps_the_last_good_checkpoint(tmp_path, tiny_model_dir, records_dir,
                                                                               monkeypatch):  # fmt: skip
    nan_at_training_forward(monkeypatch, 7)
    argv = ["--model_name_or_path", str(tiny_model_dir), "--max_steps", "12", "--save_steps", "4",
            "--save_total_limit", "1", *common(tmp_path, records_dir)]  # fmt: skip
    with pytest.raises(TrainingDiverged) as err:
        main(argv)
    out = tmp_path / "out"
    assert str(err.value) == (
        "training diverged at step 7: the training loss is nan; stopped without saving the model, the last good "
        f"checkpoint is {out / 'checkpoint-4'} (resume from it with a lower --learning_rate). Lower "
        "--learning_rate, keep --max_grad_norm or warm up longer"
    )
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4"]
    assert not (out / "model.safetensors").exists()  # the run's end was not saved over anything
    assert all(bool(t.isfinite().all()) for t in load(out / "checkpoint-4").values())
    assert last_complete_checkpoint(out) == out / "checkpoint-4"


def test_huge_learning_rate_never_saves_infinite_weights(tmp_path, tiny_model_dir, records_dir):
    # Adam's first step moves each weight by lr / (1 - beta1) = 1e39: past float32's range
    with pytest.raises(TrainingDiverged, match=r"^training diverged at step 1: the weights are no longer finite; "
                                               r"stopped without saving the model, no good checkpoint"):  # fmt: skip
        main(["--model_name_or_path", str(tiny_model_dir), "--max_steps", "3", "--save_steps", "1",
              "--learning_rate", "1e38", *common(tmp_path, records_dir)])  # fmt: skip
    assert not list((tmp_path / "out").glob("checkpoint-*"))


def test_checkpoint_whose_weights_gave_nan_is_marked_and_not_resumed(tmp_path, tiny_model_dir, records_dir):
    # lr 1e30: step 1 leaves finite but huge weights (saved as checkpoint-1); their loss at step 2 is NaN
    argv = ["--model_name_or_path", str(tiny_model_dir), "--max_steps", "3", "--save_steps", "1",
            "--learning_rate", "1e30", *common(tmp_path, records_dir)]  # fmt: skip
    with pytest.raises(TrainingDiverged) as err:
        main(argv)
    out = tmp_path / "out"
    assert str(err.value).startswith(
        "training diverged at step 2: the training loss is nan; stopped without saving the model, no good "
        "checkpoint was saved before it; checkpoint-1 holds the weights that diverged and is not resumed by default."
    )
    assert json.loads((out / "checkpoint-1" / "diverged.json").read_text())["step"] == 2
    assert last_complete_checkpoint(out) is None
    # the next run (a sane rate) does not resume those weights: it starts over, and its checkpoint-1 is clean
    main([a if a != "1e30" else "1e-3" for a in argv])
    assert not (out / "checkpoint-1" / "diverged.json").exists()
    assert last_complete_checkpoint(out) == out / "checkpoint-3"


def test_a_long_run_of_skipped_steps_stops_training(tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    guard = DivergenceGuard(max_skipped_steps=3)
    state = TrainerState(global_step=0)
    guard.on_train_begin(args, state, TrainerControl())
    skipped, applied = SimpleNamespace(step_was_skipped=True), SimpleNamespace(step_was_skipped=False)
    for step, opt in enumerate([skipped, skipped, applied, skipped, skipped], start=1):  # never 3 in a row
        state.global_step = step
        guard.on_step_end(args, state, TrainerControl(), optimizer=opt)
    state.global_step = 6
    with pytest.raises(TrainingDiverged, match=re.escape(
            "training diverged at step 6: 3 optimizer steps in a row were skipped because the gradients overflowed; "
            "stopped without saving the model, no good checkpoint was saved before it.")):  # fmt: skip
        guard.on_step_end(args, state, TrainerControl(), optimizer=skipped)


# --- Ctrl-C ------------------------------------------------------------------------------------------------


class SigintInDel:
    """SIGINT arrives while this object's ``__del__`` runs: Python raises KeyboardInterrupt there and drops it."""

    def __del__(self):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))  # the handler runs at the next bytecode: still inside __del__


def test_ctrl_c_that_python_drops_in_a_del_still_stops_the_run(tmp_path, tiny_model_dir, records_dir, monkeypatch):
    """As when Ctrl-C falls while a progress bar or file is collected during a save: the run must stop anyway."""
    import signal
    import sys

    from transformers import TrainerCallback

    from domainlm import train
    from domainlm.errors import Interrupted

    steps, dropped = [], []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(u.exc_type))  # "Exception ignored in ..."

    class DropAnInterruptAtStep2(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps.append(state.global_step)
            if state.global_step == 2:
                SigintInDel()  # collected at once: KeyboardInterrupt raised in __del__ and dropped

    real = train.long_run_callbacks
    monkeypatch.setattr(train, "long_run_callbacks", lambda *a: [DropAnInterruptAtStep2(), *real(*a)])
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted) as err:
        main(["--model_name_or_path", str(tiny_model_dir), "--max_steps", "6", "--save_steps", "1",
              *common(tmp_path, records_dir)])  # fmt: skip
    out = tmp_path / "out"
    assert dropped == [KeyboardInterrupt]  # Python dropped the one raised in __del__
    assert steps == [1, 2]  # stopped at the end of step 2 (before its checkpoint), not after step 6
    assert str(err.value) == (
        f"interrupted; run the same command again to continue from the last checkpoint in {out} (checkpoint-1)"
    )
    assert signal.getsignal(signal.SIGINT) is handler  # the previous handler is back
