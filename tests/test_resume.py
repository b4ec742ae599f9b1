"""Resuming: which checkpoint, refusing one this run cannot continue, and the same weights as a run never stopped."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, crash_at_step, free_port, run_process, script_env

from domainlm.args import RunArguments
from domainlm.errors import UserError
from domainlm.guards import CHECKPOINT_INFO, Layout, check_resume, current_layout, saved_layout
from domainlm.train import main, resolve_resume


def load(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load(a), load(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not (wa[k] == wb[k]).all()]  # exactly equal, not close
    assert not different, different


def fake_checkpoint(path: Path, files: dict[str, str] | None = None, complete: bool = True) -> Path:
    path.mkdir(parents=True)
    if complete:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": 1}))
    for name, text in (files or {"optimizer.pt": ""}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


# --- which checkpoint ------------------------------------------------------------------------------------


def training_args(tmp_path, **kw):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", **kw)


def test_default_resume_takes_the_last_complete_checkpoint(tmp_path, caplog):
    out = tmp_path / "out"
    assert resolve_resume(RunArguments(), training_args(tmp_path)) is None  # no folder yet: a new run
    fake_checkpoint(out / "checkpoint-2")
    fake_checkpoint(out / "checkpoint-10")
    fake_checkpoint(out / "checkpoint-12", complete=False)  # killed while saving
    (out / "checkpoint-9.bak").mkdir()  # not a checkpoint name
    assert resolve_resume(RunArguments(), training_args(tmp_path)) == str(out / "checkpoint-10")  # 10 > 2
    assert "checkpoint-12 is incomplete" in caplog.text
    assert resolve_resume(RunArguments(), training_args(tmp_path, resume_from_checkpoint="true")) == str(
        out / "checkpoint-10"
    )
    explicit = training_args(tmp_path, resume_from_checkpoint=str(out / "checkpoint-2"))
    assert resolve_resume(RunArguments(), explicit) == str(out / "checkpoint-2")
    # --overwrite_output_dir starts afresh, and says the old checkpoints are still there
    assert resolve_resume(RunArguments(overwrite_output_dir=True), training_args(tmp_path)) is None
    assert "3 checkpoint folder(s) of an earlier run stay in" in caplog.text


def test_what_a_run_leaves_before_its_first_checkpoint_is_not_at_stake(tmp_path):
    out = tmp_path / "out"
    (out / "runs" / "Dec01_02-00-00_host").mkdir(parents=True)  # TensorBoard, from the first logging step
    (out / "runs" / "Dec01_02-00-00_host" / "events.out.tfevents.1").write_bytes(b"\0")
    (out / "samples.jsonl").write_text("")
    (out / "optimizer_groups.json").write_text("[]")
    fake_checkpoint(out / "checkpoint-2", complete=False)  # killed while saving
    fake_checkpoint(out / "checkpoint-1", {"optimizer.pt": "", "diverged.json": "{}"})  # never resumed
    assert resolve_resume(RunArguments(), training_args(tmp_path)) is None  # a new run: nothing to lose
    (out / "model.safetensors").write_bytes(b"\0")  # a finished model (--save_strategy no)
    refused = (
        f"--output_dir {out} is not empty (model.safetensors) and holds no checkpoint to continue from; add "
        "--overwrite_output_dir to replace it, or give another --output_dir"
    )
    with pytest.raises(UserError) as err:
        resolve_resume(RunArguments(), training_args(tmp_path))
    assert str(err.value) == refused
    elsewhere = fake_checkpoint(tmp_path / "elsewhere" / "checkpoint-4")  # would still write over the model
    with pytest.raises(UserError) as err:
        resolve_resume(RunArguments(), training_args(tmp_path, resume_from_checkpoint=str(elsewhere)))
    assert str(err.value) == refused
    assert resolve_resume(RunArguments(overwrite_output_dir=True), training_args(tmp_path)) is None
    fake_checkpoint(out / "checkpoint-3")  # something to continue from: the rerun of a killed run resumes
    assert resolve_resume(RunArguments(), training_args(tmp_path)) == str(out / "checkpoint-3")


def test_a_finished_model_in_output_dir_is_refused_not_overwritten(tmp_path, tiny_model_dir, records_dir):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(tiny_model_dir, out)  # what a run with --save_strategy no leaves: no checkpoint-* folder
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    names = sorted(before)
    argv = run_args(tiny_model_dir, records_dir, out, "--max_steps", "2", "--save_strategy", "no")
    with pytest.raises(UserError) as err:
        main(argv)
    assert str(err.value) == (
        f"--output_dir {out} is not empty ({', '.join(names[:3])} and {len(names) - 3} more) and holds no checkpoint "
        "to continue from; add --overwrite_output_dir to replace it, or give another --output_dir"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    main([*argv, "--overwrite_output_dir"])
    assert (out / "model.safetensors").read_bytes() != before["model.safetensors"]


def test_errors_and_ctrl_c_leave_no_new_empty_output_folder(tmp_path, tiny_model_dir, records_dir, monkeypatch):
    import domainlm.modeling

    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"^--resume_from_checkpoint nowhere: no such folder$"):
        main(run_args(tiny_model_dir, records_dir, out, "--resume_from_checkpoint", "nowhere"))
    assert not out.exists()

    real = domainlm.modeling.load_model

    def ctrl_c(module, inputs, output):
        raise KeyboardInterrupt

    def load_and_stop_at_the_first_step(*args, **kwargs):
        model = real(*args, **kwargs)
        model.register_forward_hook(ctrl_c)
        return model

    monkeypatch.setattr(domainlm.modeling, "load_model", load_and_stop_at_the_first_step)
    with pytest.raises(KeyboardInterrupt) as err:  # TensorBoard has started its log in out/runs by then
        main(run_args(tiny_model_dir, records_dir, out, "--report_to", "tensorboard"))
    assert str(err.value) == f"interrupted; no checkpoint in {out} yet to continue from: the same command starts afresh"
    assert not out.exists()


def test_resume_flags_that_cannot_work_say_so(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"^--resume_from_checkpoint true: no complete checkpoint-\* folder in "):
        resolve_resume(RunArguments(), training_args(tmp_path, resume_from_checkpoint="true"))
    with pytest.raises(UserError, match=r"^--resume_from_checkpoint nowhere: no such folder$"):
        resolve_resume(RunArguments(), training_args(tmp_path, resume_from_checkpoint="nowhere"))
    half = fake_checkpoint(out / "checkpoint-4", complete=False)
    with pytest.raises(UserError, match=r"it has no readable trainer_state.json \(a run stopped while saving it"):
        resolve_resume(RunArguments(), training_args(tmp_path, resume_from_checkpoint=str(half)))
    only_model = fake_checkpoint(out / "checkpoint-6", {"model.safetensors": ""})
    with pytest.raises(UserError) as err:
        resolve_resume(RunArguments(), training_args(tmp_path))
    assert str(err.value) == (
        f"cannot resume from {only_model}: it holds no optimizer state (saved with --save_only_model?); "
        f"pass --model_name_or_path {only_model} --overwrite_output_dir to start a new run from its weights"
    )


TWO_MACHINES = """
import os
import sys

import torch.distributed as dist
from transformers import TrainingArguments

from domainlm.args import RunArguments
from domainlm.errors import UserError
from domainlm.train import resolve_resume

dist.init_process_group("gloo")  # RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT from the environment
for case in sys.argv[1:]:  # OUTPUT_DIR or OUTPUT_DIR:RESUME_FROM, relative to the machine's folder
    out, _, resume = case.partition(":")
    args = TrainingArguments(output_dir=out, resume_from_checkpoint=resume or None, report_to="none", use_cpu=True)
    try:
        print("continues from", resolve_resume(RunArguments(), args))
    except UserError as err:
        print("error:", err)
dist.barrier()
sys.stdout.flush()
os._exit(0)  # no interpreter shutdown under Gloo's threads (see domainlm.distributed.release_process_group)
"""


def test_machines_that_see_different_checkpoints_are_refused_on_every_one(tmp_path):
    """Two processes of one gloo group, each in its own ``machine-<rank>`` folder: the same relative
    ``--output_dir`` names different folders, as on two machines without a shared filesystem. The Trainer
    writes a checkpoint's trainer_state.json on the first machine only (without --save_on_each_node), so
    the second finds it incomplete and would start afresh while the first continues."""
    import socket

    for machine in ("machine-0", "machine-1"):
        fake_checkpoint(tmp_path / machine / "both" / "checkpoint-4")  # --save_on_each_node: whole on both
    fake_checkpoint(tmp_path / "machine-0" / "first" / "checkpoint-4")
    fake_checkpoint(tmp_path / "machine-1" / "first" / "checkpoint-4", complete=False)
    fake_checkpoint(tmp_path / "machine-0" / "explicit" / "checkpoint-4")
    (tmp_path / "script.py").write_text(TWO_MACHINES)
    port = str(free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(tmp_path / "script.py"), "first", "explicit:explicit/checkpoint-4", "both"],
            cwd=tmp_path / f"machine-{rank}",
            env=script_env(RANK=str(rank), LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    host = socket.gethostname()
    hint = (
        "machines that do not share --output_dir's filesystem need --save_on_each_node (each machine then keeps "
        "its own checkpoints) or an --output_dir they all see; --overwrite_output_dir starts afresh"
    )
    expected = [
        "error: the processes do not agree on the checkpoint in first to continue from: checkpoint-4 on "
        f"{host} (rank 0); no complete checkpoint on {host} (rank 1); {hint}",
        "error: the processes do not agree on --resume_from_checkpoint explicit/checkpoint-4: complete on "
        f"{host} (rank 0); no such folder on {host} (rank 1); {hint}",
        "continues from both/checkpoint-4",
    ]
    for stdout, _ in outputs:  # every process stops with the same line, or continues from the same checkpoint
        assert stdout.strip().splitlines()[-3:] == expected


# --- whether this run can continue it ----------------------------------------------------------------------


def test_layout_read_from_deepspeed_files_when_not_recorded(tmp_path):
    zero2 = fake_checkpoint(tmp_path / "z2", {"latest": "global_step4", "global_step4/mp_rank_00_model_states.pt": "",
                            **{f"global_step4/zero_pp_rank_{r}_mp_rank_00_optim_states.pt": "" for r in range(4)}})  # fmt: skip
    assert saved_layout(zero2) == Layout(deepspeed=True, zero_stage=None, world_size=4)
    zero3 = fake_checkpoint(tmp_path / "z3", {"global_step4/zero_pp_rank_0_mp_rank_00_model_states.pt": "",
                            "global_step4/bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt": ""})  # fmt: skip
    assert saved_layout(zero3) == Layout(deepspeed=True, zero_stage=3, world_size=1)
    assert saved_layout(fake_checkpoint(tmp_path / "plain")) == Layout(deepspeed=False)
    assert saved_layout(fake_checkpoint(tmp_path / "weights", {"model.safetensors": ""})) is None
    # what the run recorded wins over what the files suggest
    recorded = fake_checkpoint(tmp_path / "rec", {"optimizer.pt": "", CHECKPOINT_INFO: json.dumps(
        {"deepspeed": True, "zero_stage": 2, "world_size": 8})})  # fmt: skip
    assert saved_layout(recorded) == Layout(True, 2, 8)


def test_current_layout_from_the_deepspeed_config():
    ds = SimpleNamespace(deepspeed={"zero_optimization": {"stage": 3}}, world_size=2)
    assert current_layout(ds) == Layout(True, 3, 2)
    assert current_layout(SimpleNamespace(deepspeed=None, world_size=1)) == Layout(False, None, 1)


@pytest.mark.parametrize(
    ("saved", "now", "said"),
    [
        (Layout(True, 2, 1), Layout(True, 3, 1),
         "it was saved under DeepSpeed ZeRO stage 2 on 1 process and this run trains under DeepSpeed ZeRO stage 3 on "
         "1 process"),
        (Layout(True, 3, 2), Layout(True, 3, 4),
         "it was saved under DeepSpeed ZeRO stage 3 on 2 processes and this run trains under DeepSpeed ZeRO stage 3 "
         "on 4 processes"),
        (Layout(True, None, 1), Layout(False, None, 1),
         "it was saved under DeepSpeed ZeRO stage 1 or 2 on 1 process and this run trains without DeepSpeed on 1 "
         "process"),
        (Layout(False, None, 1), Layout(True, 2, 1),
         "it was saved without DeepSpeed on 1 process and this run trains under DeepSpeed ZeRO stage 2 on 1 process"),
    ],
)  # fmt: skip
def test_another_zero_stage_or_world_size_is_refused_in_one_line(tmp_path, saved, now, said):
    ckpt = fake_checkpoint(tmp_path / "checkpoint-4", {CHECKPOINT_INFO: json.dumps(saved.__dict__)})
    with pytest.raises(UserError) as err:
        check_resume(ckpt, now)
    assert str(err.value) == (
        f"cannot resume from {ckpt}: {said}; resume with the --deepspeed config and number of processes it was "
        "saved with, or pass --overwrite_output_dir to start afresh"
    )
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("saved", "now"),
    [
        (Layout(True, 2, 2), Layout(True, 2, 2)),
        (Layout(True, None, 2), Layout(True, 1, 2)),  # ZeRO-1 and ZeRO-2 write the same files
        (Layout(False, None, 1), Layout(False, None, 2)),  # the Trainer's optimizer.pt is whole
    ],
)
def test_same_layout_resumes(tmp_path, saved, now):
    check_resume(fake_checkpoint(tmp_path / "checkpoint-4", {CHECKPOINT_INFO: json.dumps(saved.__dict__)}), now)


# --- same weights as a run never stopped ---------------------------------------------------------------------


def run_args(model_dir, data_dir, out, *extra):
    return ["--model_name_or_path", str(model_dir), "--train_file", str(data_dir / "train.csv"), "--do_train",
            "--output_dir", str(out), "--max_steps", "8", "--save_steps", "4", "--per_device_train_batch_size", "8",
            "--learning_rate", "1e-3", "--warmup_steps", "2", "--report_to", "none", "--disable_tqdm", "true",
            "--seed", "3", *extra]  # fmt: skip


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, tiny_model_dir, records_dir, monkeypatch, caplog):
    """Stopped at step 6 (48 rows, batch 8: mid-epoch, dropout on), with a half-written checkpoint-6 left over."""
    main(run_args(tiny_model_dir, records_dir, tmp_path / "whole"))

    restore = crash_at_step(monkeypatch, 6, KeyboardInterrupt("power cut"))
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt) as err:
        main(run_args(tiny_model_dir, records_dir, out))
    assert str(err.value) == (
        f"interrupted; run the same command again to continue from the last checkpoint in {out} (checkpoint-4)"
    )
    restore()
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-4"]
    (out / "checkpoint-6").mkdir()  # what a kill during the next save would leave
    (out / "checkpoint-6" / "model.safetensors").write_bytes(b"\0" * 100)

    import logging

    warnings = logging.Handler(logging.WARNING)
    warnings.emit = lambda record: said.append(record.getMessage())
    said: list[str] = []
    logging.getLogger("transformers").addHandler(warnings)  # it does not propagate to caplog's root handler
    try:
        results = main(run_args(tiny_model_dir, records_dir, out))
    finally:
        logging.getLogger("transformers").removeHandler(warnings)
    assert f"continuing from {out / 'checkpoint-4'}" in caplog.text
    # the tied head is saved once: no "There were missing keys in the checkpoint model loaded: ['lm_head.weight']"
    assert not [m for m in said if "missing keys" in m], said
    assert results["train_samples"] == 48
    assert_same_weights(out, tmp_path / "whole")
    assert json.loads((out / "checkpoint-8" / CHECKPOINT_INFO).read_text()) == {
        "deepspeed": False,
        "zero_stage": None,
        "world_size": 1,
    }


def test_a_resumed_run_continues_the_samples_and_optimizer_groups_of_the_run_it_resumes(
    tmp_path, tiny_model_dir, records_dir, monkeypatch
):
    """A new run removes an earlier run's samples.jsonl and optimizer_groups.json at its start; a resumed one
    keeps them: the samples up to its checkpoint, then its own."""
    out = tmp_path / "out"
    argv = run_args(tiny_model_dir, records_dir, out, "--sample_every_steps", "2", "--num_samples", "1",
                    "--sample_max_new_tokens", "3", "--layerwise_lr_decay", "0.8")  # fmt: skip
    restore = crash_at_step(monkeypatch, 6, RuntimeError("power cut"))
    with pytest.raises(RuntimeError, match=r"^power cut$"):
        main(argv)
    restore()
    steps = lambda: [json.loads(line)["step"] for line in (out / "samples.jsonl").read_text().splitlines()]  # noqa: E731
    assert steps() == [2, 4] and [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-4"]
    groups = (out / "optimizer_groups.json").read_text()
    main(argv)
    assert steps() == [2, 4, 6, 8]
    assert (out / "optimizer_groups.json").read_text() == groups


# --- through the real scripts -------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_then_rerun_ends_with_the_same_weights(tmp_path, tiny_model_dir, records_dir):
    cmd = [sys.executable, str(ROOT / "run_clm.py"), *run_args(tiny_model_dir, records_dir, "OUT", "--save_steps",
           "2", "--max_steps", "12")]  # fmt: skip

    def command(out: Path) -> list[str]:
        return [str(out) if a == "OUT" else a for a in cmd]

    whole = run_process(command(tmp_path / "whole"), env=script_env())
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(command(out), env=script_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (out / "checkpoint-4").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # as soon as checkpoint-4 appears: possibly half-written
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model.safetensors").exists()

    again = run_process(command(out), env=script_env())
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continuing from" in again.stdout + again.stderr
    assert_same_weights(out, tmp_path / "whole")


@pytest.mark.slow
def test_resuming_under_another_zero_stage_ends_with_one_line(tmp_path, tiny_model_dir, records_dir):
    """ZeRO-2 checkpoint, then the same command with ZeRO-3 (DeepSpeed would stop on a bare AssertionError)."""
    env = script_env(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    out = tmp_path / "out"
    base = [sys.executable, str(ROOT / "run_clm.py"), *run_args(tiny_model_dir, records_dir, out, "--max_steps", "2",
            "--save_steps", "2")]  # fmt: skip
    first = run_process([*base, "--deepspeed", str(ROOT / "ds_config.json")], env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((out / "checkpoint-2" / CHECKPOINT_INFO).read_text()) == {
        "deepspeed": True,
        "zero_stage": 2,
        "world_size": 1,
    }
    ckpt = out / "checkpoint-2"
    for flags, now in (
        (["--deepspeed", str(ROOT / "ds_config_zero3.json")], "under DeepSpeed ZeRO stage 3 on 1 process"),
        ([], "without DeepSpeed on 1 process"),
    ):
        proc = run_process([*base, "--max_steps", "4", *flags], env=env)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert proc.stderr.strip().splitlines()[-1] == (
            f"error: cannot resume from {ckpt}: it was saved under DeepSpeed ZeRO stage 2 on 1 process and this run "
            f"trains {now}; resume with the --deepspeed config and number of processes it was saved with, or pass "
            f"--model_name_or_path {ckpt} --overwrite_output_dir to start a new run from its weights"
        )
        assert "AssertionError" not in proc.stderr


def test_resumed_with_more_steps_the_first_step_follows_the_new_schedule(tmp_path, tiny_model_dir, records_dir, caplog):
    """A 2-step linear schedule ends at rate 0; rerun with --max_steps 4, step 3 takes the 4-step schedule's
    rate (half the peak), not the 0 the checkpoint's optimizer state holds."""
    import logging

    import torch

    out = tmp_path / "out"
    flags = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"),
             "--do_train", "--output_dir", str(out), "--save_steps", "1", "--per_device_train_batch_size", "8",
             "--learning_rate", "1e-3", "--warmup_steps", "0", "--lr_scheduler_type", "linear", "--report_to", "none",
             "--disable_tqdm", "true", "--seed", "3"]  # fmt: skip
    main([*flags, "--max_steps", "2"])
    with caplog.at_level(logging.INFO, logger="domainlm.trainer"):
        main([*flags, "--max_steps", "4"])
    assert (
        f"{out / 'checkpoint-2'} was saved under a schedule of 2 steps: from step 2 the rates follow this run's 4-step"
        in (caplog.text)
    )
    two, three = load(out / "checkpoint-2"), load(out / "checkpoint-3")
    assert not torch.equal(two["transformer.h.0.mlp.c_fc.weight"], three["transformer.h.0.mlp.c_fc.weight"])
    optimizer = torch.load(out / "checkpoint-3" / "optimizer.pt", weights_only=True)
    assert [g["lr"] for g in optimizer["param_groups"]] == pytest.approx([2.5e-4] * len(optimizer["param_groups"]))


def test_a_resumed_run_logs_and_saves_as_its_command_line_says(tmp_path, tiny_model_dir, records_dir, caplog):
    """Resumed with --save_steps 1 --logging_steps 1, the run saves and logs every step from the checkpoint on;
    the restored state held the first run's intervals (2 and 500), which the Trainer would have followed."""
    import logging

    out = tmp_path / "out"
    flags = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"),
             "--do_train", "--output_dir", str(out), "--per_device_train_batch_size", "8", "--report_to", "none",
             "--disable_tqdm", "true", "--save_total_limit", "10"]  # fmt: skip
    main([*flags, "--max_steps", "2", "--save_steps", "2"])
    with caplog.at_level(logging.INFO):
        main([*flags, "--max_steps", "5", "--save_steps", "1", "--logging_steps", "1"])
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [f"checkpoint-{n}" for n in (2, 3, 4, 5)]
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in history if "loss" in h] == [3, 4, 5]
    assert (
        f"resuming from {out / 'checkpoint-2'} with this run's --logging_steps 1 (it had 500), --save_steps 1 (it had 2)"
        in caplog.text
    )
    assert "do not match the ones in the `trainer_state.json`" not in caplog.text  # what applies is said above


def test_intervals_filter_keeps_a_batch_size_mismatch():
    from domainlm.trainer import _IntervalsApplyFilter

    head = _IntervalsApplyFilter.HEAD + " within the checkpoint directory: "
    both = logging_record(head + "\n\tsave_steps: 1 (from args) != 2 (from trainer_state.json)"
                          "\n\tper_device_train_batch_size: 4 (from args) != 8 (from trainer_state.json)")  # fmt: skip
    assert _IntervalsApplyFilter().filter(both)
    assert both.getMessage() == head + "\n\tper_device_train_batch_size: 4 (from args) != 8 (from trainer_state.json)"
    assert not _IntervalsApplyFilter().filter(logging_record(head + "\n\tlogging_steps: 1 (from args) != 500 (x)"))
    assert _IntervalsApplyFilter().filter(logging_record("another warning"))


def logging_record(message: str):
    import logging

    return logging.LogRecord("transformers.trainer_utils", logging.WARNING, __file__, 1, message, (), None)


def test_a_checkpoint_at_or_past_the_last_step_trains_no_step_more(tmp_path, tiny_model_dir, records_dir):
    """A finished run rerun with the same command took one step past --max_steps (checkpoint-5 of a 4-step
    run) and saved it as the model; with fewer steps it trained one more and put the new card on it."""
    out = tmp_path / "out"
    argv = run_args(tiny_model_dir, records_dir, out, "--max_steps", "4")  # the last --max_steps wins
    main(argv)
    finished = load(out)
    main(argv)  # what a rerun after a kill during the final save does: saves checkpoint-4's weights
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4"]
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4
    assert_same_weights(out, out / "checkpoint-4")
    assert all((finished[k] == w).all() for k, w in load(out).items())
    with pytest.raises(UserError) as err:
        main([*argv, "--max_steps", "2"])
    assert str(err.value) == (
        f"{out / 'checkpoint-4'} has trained 4 steps, more than the 2 of this run (--max_steps or --num_train_epochs), "
        "so nothing would train: raise them to continue from it, or start afresh (--overwrite_output_dir, without "
        "--resume_from_checkpoint)"
    )
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4"]


# --- DeepSpeed's CPU Adam after a resume -------------------------------------------------------------------


def adam_steps(adam, param, grads) -> None:
    for grad in grads:
        param.grad = grad.clone()
        adam.step()


def test_cpu_adam_resumed_takes_the_same_step_as_the_run_never_stopped():
    """DeepSpeed's CPU Adam keeps beta^t as a running product; a new one asked for step 3 takes a power,
    0.999**3 in float32, one bit off. ``CPUAdamResume`` replays steps 1-2 so the third step is exact."""
    import torch
    from deepspeed.ops.adam import DeepSpeedCPUAdam
    from transformers import TrainerControl, TrainerState

    from domainlm.guards import CPUAdamResume

    torch.manual_seed(0)
    start = torch.randn(4096)
    grads = [torch.randn(4096) for _ in range(3)]

    def fresh():
        param = torch.nn.Parameter(start.clone())
        return param, DeepSpeedCPUAdam([param], lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)

    unbroken, adam = fresh()
    adam_steps(adam, unbroken, grads)
    first, adam = fresh()
    adam_steps(adam, first, grads[:2])
    saved = (first.detach().clone(), adam.state_dict())

    def resumed(replay: bool) -> torch.Tensor:
        param, adam = fresh()
        with torch.no_grad():
            param.copy_(saved[0])
        adam.load_state_dict(saved[1])
        if replay:
            state = TrainerState(global_step=2)
            CPUAdamResume().on_train_begin(None, state, TrainerControl(), optimizer=SimpleNamespace(optimizer=adam))
        adam_steps(adam, param, grads[2:])
        return param.detach()

    assert torch.equal(resumed(replay=True), unbroken.detach())
    assert not torch.equal(resumed(replay=False), unbroken.detach())  # what DeepSpeed alone gives


def test_deepspeed_run_killed_and_resumed_ends_with_the_same_weights(tmp_path, tiny_model_dir, records_dir):
    """Under ds_config.json (Adam offloaded to the CPU), one process without the launcher: a run cut back to
    its checkpoint-2 and started again ends on exactly the weights of the run never stopped."""
    import shutil

    whole = tmp_path / "whole"
    cmd = [sys.executable, str(ROOT / "run_clm.py"), "--deepspeed", str(ROOT / "ds_config.json"),
           *run_args(tiny_model_dir, records_dir, whole, "--max_steps", "4", "--save_steps", "2")]  # fmt: skip
    proc = run_process(cmd, env=script_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    shutil.rmtree(cut / "checkpoint-4")
    (cut / "model.safetensors").unlink()  # as a kill -9 after step 3 leaves it: checkpoint-2 the last
    proc = run_process([str(cut) if a == str(whole) else a for a in cmd], env=script_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "continuing from" in proc.stdout + proc.stderr
    assert_same_weights(cut, whole)
    assert "bias correction brought to step 2" in proc.stdout + proc.stderr


def test_the_ctrl_c_line_says_how_to_continue_in_the_words_of_the_script_that_runs_it(tmp_path, monkeypatch):
    """launch.sh passes --overwrite_output_dir to a fresh run and drops it when a checkpoint is there: its users
    continue by running launch.sh again, which it says through DOMAINLM_RERUN."""
    from transformers import TrainingArguments

    from domainlm.args import RunArguments
    from domainlm.train import RERUN_HINT, interrupted_message

    out = tmp_path / "out"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "trainer_state.json").write_text("{}")
    args = TrainingArguments(str(out), do_train=True, report_to="none")
    fresh = RunArguments(overwrite_output_dir=True)
    monkeypatch.delenv(RERUN_HINT, raising=False)
    assert interrupted_message(fresh, args) == (
        f"interrupted; to continue from {out / 'checkpoint-2'}, run the same command without --overwrite_output_dir"
    )
    monkeypatch.setenv(RERUN_HINT, "run the same command again")
    line = f"interrupted; run the same command again to continue from the last checkpoint in {out} (checkpoint-2)"
    assert interrupted_message(fresh, args) == line
    assert interrupted_message(RunArguments(), args) == line


def test_a_resumed_run_reports_the_perplexity_before_training_not_the_checkpoints(
    tmp_path, tiny_model_dir, records_dir, monkeypatch
):
    """--eval_before_training on a resumed run: 'before' is the interrupted run's step-0 evaluation (the
    checkpoint's weights were measured as 'before' and the model card showed them so)."""
    extra = ("--do_eval", "--validation_file", str(records_dir / "validation.csv"), "--eval_before_training")
    whole = main(run_args(tiny_model_dir, records_dir, tmp_path / "whole", *extra))
    out = tmp_path / "stopped"
    restore = crash_at_step(monkeypatch, 6, RuntimeError("power cut"))
    with pytest.raises(RuntimeError, match=r"^power cut$"):
        main(run_args(tiny_model_dir, records_dir, out, *extra))
    restore()
    resumed = main(run_args(tiny_model_dir, records_dir, out, *extra))
    for key in ("eval_before_loss", "eval_before_perplexity", "eval_before_accuracy"):
        assert resumed[key] == whole[key], key
    assert resumed["eval_loss"] == pytest.approx(whole["eval_loss"], rel=1e-6)  # resumed exactly
    card = (out / "README.md").read_text()
    assert f"| perplexity | {whole['eval_before_perplexity']:,.4g} | {resumed['eval_perplexity']:,.4g} |" in card


def test_the_ctrl_c_line_of_a_new_run_does_not_offer_an_earlier_runs_checkpoint(tmp_path, monkeypatch):
    """A new run (--overwrite_output_dir) stopped before its first save, in a folder where a finished run kept its
    checkpoint (launch.sh KEEP_CHECKPOINTS=1): that checkpoint is not this run's to continue, and launch.sh run
    again starts afresh (the checkpoint is older than the model)."""
    import os
    import time

    from transformers import TrainingArguments

    from domainlm.args import RunArguments
    from domainlm.train import RERUN_HINT, interrupted_message

    out = tmp_path / "out"
    (out / "checkpoint-40").mkdir(parents=True)
    (out / "checkpoint-40" / "trainer_state.json").write_text("{}")
    hour_ago = time.time() - 3600
    os.utime(out / "checkpoint-40" / "trainer_state.json", (hour_ago, hour_ago))
    (out / "model.safetensors").write_bytes(b"\0")
    args = TrainingArguments(str(out), do_train=True, report_to="none")
    fresh, started = RunArguments(overwrite_output_dir=True), time.time() - 60
    afresh = (
        f"interrupted; this run saved no checkpoint in {out} yet (checkpoint-40 is an earlier run's): the same "
        "command starts afresh"
    )
    monkeypatch.setenv(RERUN_HINT, "run the same command again")
    assert interrupted_message(fresh, args, since=started) == afresh
    monkeypatch.delenv(RERUN_HINT)
    assert interrupted_message(fresh, args, since=started) == afresh
    # a resumed run (no --overwrite_output_dir) goes on from that checkpoint, whenever it was written
    assert interrupted_message(RunArguments(), args, since=started) == (
        f"interrupted; run the same command again to continue from the last checkpoint in {out} (checkpoint-40)"
    )
    # the new run's own checkpoint
    (out / "checkpoint-42").mkdir()
    (out / "checkpoint-42" / "trainer_state.json").write_text("{}")
    assert interrupted_message(fresh, args, since=started) == (
        f"interrupted; to continue from {out / 'checkpoint-42'}, run the same command without --overwrite_output_dir"
    )
