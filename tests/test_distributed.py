"""Process-group teardown at the end of a command-line run (``domainlm.errors.run_cli``).

Run in a fresh interpreter: a process group in the test process would outlive the test.
"""

import json
import re
import subprocess
import sys

import pytest
from conftest import ROOT, free_port

SCRIPT = """
import sys

from domainlm.errors import UserError, run_cli

print(run_cli(lambda argv: None), "torch" in sys.modules)  # a script that never imports torch keeps it so

import torch.distributed as dist


def fail(argv):
    raise UserError("bad flag")


def start():
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:{port}", rank=0, world_size=1)


start()
print(run_cli(fail), dist.is_initialized())  # an error leaves it alone
print(run_cli(lambda argv: None), dist.is_initialized())  # success takes it down

import logging

logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
start()
kept = [dist.new_group([0])]  # as ZeRO-3 keeps its groups: Gloo's threads outlive destroy_process_group
from domainlm.distributed import gloo_threads

print("kept a group", gloo_threads() > 0, flush=True)
run_cli(lambda argv: None)
print("not reached")
"""


def test_a_successful_run_takes_the_process_group_down_or_leaves_before_shutdown():
    script = SCRIPT.replace("{port}", str(free_port()))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    *before, kept, end = proc.stdout.split("\n")
    assert [*before, end] == ["0 False", "2 True", "0 False", ""]
    lines = proc.stderr.strip().split("\n")
    assert "error: bad flag" in lines
    if kept == "kept a group False":
        pytest.skip("this system does not show thread names in /proc/self/task/*/comm")
    assert kept == "kept a group True"
    # how many threads Gloo runs per group is its own business; that some outlive the group is the point
    assert re.fullmatch(
        r"domainlm\.distributed: [1-9]\d* Gloo worker threads outlive the process group; leaving without "
        r"interpreter shutdown",
        lines[-1],
    ), lines[-1]


# --- Ctrl-C and bugs: one line, or the traceback, and never DeepSpeed's shared-memory buffer left behind ----------


def test_ctrl_c_is_one_line_with_status_130_and_every_way_out_removes_the_buffer(capsys, monkeypatch):
    from domainlm import distributed
    from domainlm.errors import Interrupted, UserError, run_cli

    removed = []
    monkeypatch.setattr(distributed, "remove_shm_buffer", lambda: removed.append(True))

    def ctrl_c(argv):
        raise KeyboardInterrupt

    def ctrl_c_in_training(argv):
        raise Interrupted("interrupted; run the same command again to continue from the last checkpoint in o")

    def bad_flag(argv):
        raise UserError("bad flag")

    def bug(argv):
        raise RuntimeError("a bug")

    assert run_cli(ctrl_c) == 130
    assert capsys.readouterr().err == "interrupted\n"
    assert run_cli(ctrl_c_in_training) == 130
    assert (
        capsys.readouterr().err == "interrupted; run the same command again to continue from the last checkpoint in o\n"
    )
    assert run_cli(bad_flag) == 2
    assert capsys.readouterr().err == "error: bad flag\n"
    with pytest.raises(RuntimeError, match="a bug"):  # a bug keeps its traceback
        run_cli(bug)
    assert removed == [True] * 4


def test_output_piped_into_a_reader_that_stops_early_ends_without_a_traceback(tmp_path):
    """``prepare_jobs.py ... | head -1``: the outputs are written; what no one reads is dropped, status 141."""
    script = (
        "import sys\n"
        "from domainlm.errors import run_cli\n"
        "def main(argv):\n"
        "    sys.stdin.read()  # the test closes stdout's reading end before stdin\n"
        "    open(sys.argv[1], 'w').write('written')\n"
        "    for i in range(10000):\n"
        "        print('line', i, flush=True)\n"
        "sys.exit(run_cli(main))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out.txt")], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    proc.stdout.close()
    _, err = proc.communicate(input="")
    assert (proc.returncode, err, (tmp_path / "out.txt").read_text()) == (141, "", "written")


def test_a_broken_pipe_that_is_not_standard_output_keeps_its_traceback(monkeypatch):
    from domainlm import distributed
    from domainlm.errors import run_cli

    monkeypatch.setattr(distributed, "remove_shm_buffer", lambda: None)

    def socket_closed(argv):
        raise BrokenPipeError(32, "Broken pipe")  # e.g. a peer's socket: a bug or a crash, not `| head`

    with pytest.raises(BrokenPipeError):
        run_cli(socket_closed)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_sigint_during_training_says_how_to_continue(tmp_path, tiny_model_dir, records_dir, signame):
    """A real Ctrl-C (SIGINT) to ``run_clm.py`` once a checkpoint is written: one line, status 130. SIGTERM,
    which the DeepSpeed launcher sends each rank on Ctrl-C (and schedulers on preemption), ends the same way."""
    import os
    import signal
    import time

    from conftest import script_env

    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "run_clm.py"), "--model_name_or_path", str(tiny_model_dir), "--train_file",
           str(records_dir / "train.csv"), "--do_train", "--output_dir", str(out), "--max_steps", "100000",
           "--save_steps", "2", "--save_total_limit", "2", "--per_device_train_batch_size", "8", "--report_to", "none",
           "--disable_tqdm", "true"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoint-2" / "trainer_state.json").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint-2 after 300 s"
            time.sleep(0.05)
        proc.send_signal(getattr(signal, signame))
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert re.fullmatch(
        rf"interrupted; run the same command again to continue from the last checkpoint in {re.escape(str(out))} "
        r"\(checkpoint-\d+\)",
        stderr.strip().splitlines()[-1],
    ), stderr[-3000:]


# --- DeepSpeed without the launcher, and a port another run holds (one process on CPU) ------------------------

LAUNCHER_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def plain_env(**extra: str) -> dict[str, str]:
    """A shell's environment: no launcher variables."""
    from conftest import script_env

    env = {k: v for k, v in script_env().items() if k not in LAUNCHER_ENV}
    return {**env, **extra}


def tiny_run(model_dir, data_dir, out, *extra) -> list[str]:
    return [str(ROOT / "run_clm.py"), "--deepspeed", str(ROOT / "ds_config.json"), "--model_name_or_path",
            str(model_dir), "--train_file", str(data_dir / "train.csv"), "--do_train", "--output_dir", str(out),
            "--max_steps", "2", "--per_device_train_batch_size", "8", "--report_to", "none", "--disable_tqdm", "true",
            *extra]  # fmt: skip


def test_deepspeed_without_the_launcher_runs_as_one_process(tmp_path, tiny_model_dir, records_dir):
    from pathlib import Path

    from conftest import run_process

    out = tmp_path / "out"
    proc = run_process([sys.executable, *tiny_run(tiny_model_dir, records_dir, out)], env=plain_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = re.search(
        r"INFO domainlm: --deepspeed without the deepspeed launcher: one process \(RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 "
        r"MASTER_ADDR=127\.0\.0\.1 MASTER_PORT=(\d+)\)\n",
        proc.stdout,
    )
    assert said, proc.stdout[-3000:]
    assert (out / "model.safetensors").is_file()
    assert json.loads((out / "checkpoint-2" / "domainlm_checkpoint.json").read_text()) == {
        "deepspeed": True,
        "zero_stage": 2,
        "world_size": 1,
    }
    assert not list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{said.group(1)}_*"))


BUG = """
import sys

import domainlm.modeling
from domainlm.errors import run_cli
from domainlm.train import main

real = domainlm.modeling.load_model


def bug(module, inputs, output):
    import os
    import signal

    from domainlm.distributed import shm_buffer

    print("buffer while training:", shm_buffer(0).exists(), flush=True)
    if os.environ.get("BUG") == "kill":
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no cleanup runs
    raise RuntimeError("a bug")


def load_model(*args, **kwargs):
    model = real(*args, **kwargs)
    model.register_forward_hook(bug)
    return model


domainlm.modeling.load_model = load_model
sys.exit(run_cli(main, sys.argv[1:]))
"""


def test_a_bug_under_deepspeed_shows_its_traceback_and_leaves_no_shared_memory(tmp_path, tiny_model_dir, records_dir):

    from conftest import free_port, run_process

    port = str(free_port())
    # LOCAL_SIZE, as the launcher sets it, makes DeepSpeed's CPU ops create the buffer even for one rank
    proc = run_process([sys.executable, "-c", BUG, *tiny_run(tiny_model_dir, records_dir, tmp_path / "out")[1:]],
                       cwd=ROOT, env=plain_env(MASTER_PORT=port, LOCAL_SIZE="1"))  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" in proc.stderr and proc.stderr.strip().endswith("RuntimeError: a bug")
    assert_buffer_gone_before_training(proc.stdout, port)
    assert not (tmp_path / "out").exists()  # no step was taken: the new folder is removed again


def assert_buffer_gone_before_training(stdout: str, port: str) -> None:
    """DeepSpeed created this run's buffer, its name was removed once mapped, and nothing is left of it."""
    from pathlib import Path

    assert re.search(rf"/dev/shm/deepspeed_allreduce_buffer_\d+_127\.0\.0\.1_{port}_0 is mapped by every rank", stdout)
    assert "buffer while training: False" in stdout
    assert not list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*"))


def test_a_run_killed_outright_leaves_no_shared_memory(tmp_path, tiny_model_dir, records_dir):
    """kill -9 in the middle of a step: no exit path runs, and still no 70 MB buffer is left in /dev/shm."""
    from conftest import free_port, run_process

    port = str(free_port())
    proc = run_process([sys.executable, "-c", BUG, *tiny_run(tiny_model_dir, records_dir, tmp_path / "out")[1:]],
                       cwd=ROOT, env=plain_env(MASTER_PORT=port, LOCAL_SIZE="1", BUG="kill"))  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert_buffer_gone_before_training(proc.stdout, port)


def test_a_port_another_run_holds_is_one_line(tmp_path, tiny_model_dir, records_dir):
    """The ``deepspeed`` launcher's rank 0 on a ``--master_port`` another process listens on."""
    import socket

    from conftest import DEEPSPEED, run_process

    with socket.socket() as held:
        held.bind(("", 0))
        held.listen()
        port = held.getsockname()[1]
        cmd = [DEEPSPEED, "--num_gpus=1", "--master_port", str(port), *tiny_run(tiny_model_dir, records_dir,
               tmp_path / "out")]  # fmt: skip
        proc = run_process(cmd, cwd=tmp_path, env=plain_env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and re.fullmatch(
        rf"error: port {port} \(MASTER_PORT\) is in use, probably by another run; pass a free port to deepspeed with "
        r"--master_port N \(e\.g\. --master_port \d+, free now\)",
        lines[0],
    ), proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()


def test_evaluation_alone_under_zero_2_is_one_line(tmp_path, tiny_model_dir, records_dir):
    """DeepSpeed runs inference only under ZeRO-3: ZeRO-2 without --do_train is refused before any work."""
    from conftest import run_process

    cmd = [sys.executable, str(ROOT / "run_clm.py"), "--deepspeed", str(ROOT / "ds_config.json"), "--model_name_or_path",
           str(tiny_model_dir), "--validation_file", str(records_dir / "validation.csv"), "--do_eval", "--output_dir",
           str(tmp_path / "out"), "--report_to", "none"]  # fmt: skip
    proc = run_process(cmd, env=plain_env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: --do_eval without --do_train under DeepSpeed ZeRO stage 2: DeepSpeed evaluates alone only under "
        "ZeRO-3; pass --deepspeed ds_config_zero3.json, or leave out --deepspeed"
    )
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def guide_config(tmp_path, name: str, change) -> str:
    """ds_config.json as a guide gives it: explicit values where the project's file says "auto"."""
    config = json.loads((ROOT / "ds_config.json").read_text())
    change(config)
    path = tmp_path / name
    path.write_text(json.dumps(config, indent=2))
    return str(path)


def blog_batch(c):
    c.update(train_batch_size=16, train_micro_batch_size_per_gpu=8, gradient_accumulation_steps=2)


def fp16_on(c):
    c["fp16"]["enabled"] = True


def explicit_lr_and_warmup(c):
    c["optimizer"]["params"]["lr"] = 3e-5
    c["scheduler"] = {
        "type": "WarmupLR",
        "params": {"warmup_min_lr": 0, "warmup_max_lr": 3e-5, "warmup_num_steps": 100},
    }


def decay_schedule(c):
    c["scheduler"] = {"type": "WarmupDecayLR", "params": {"warmup_min_lr": "auto", "warmup_max_lr": "auto",
                      "warmup_num_steps": 100, "total_num_steps": 1000}}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "steps", "said"),
    [
        (blog_batch, ["--max_steps", "2"], "train_micro_batch_size_per_gpu is 8 but --per_device_train_batch_size is 4; "
         "gradient_accumulation_steps is 2 but --gradient_accumulation_steps is 1; train_batch_size is 16 but "
         "--per_device_train_batch_size x --gradient_accumulation_steps x 1 process gives 4"),
        (fp16_on, ["--max_steps", "2"], "fp16.enabled is true but --fp16 is false (fp16 needs a CUDA GPU and none "
         "was found: this run trains in fp32)"),
        (explicit_lr_and_warmup, ["--max_steps", "2"], "optimizer.params.lr is 3e-05 but --learning_rate is 5e-05; "
         "scheduler.params.warmup_max_lr is 3e-05 but --learning_rate is 5e-05; scheduler.params.warmup_num_steps is "
         "100 but this run warms up for 1 step (--warmup_steps)"),
        (decay_schedule, ["--max_steps", "2"], "scheduler.params.total_num_steps is 1000 but this run takes 2 steps "
         "(--max_steps, --num_train_epochs); scheduler.params.warmup_num_steps is 100 but this run warms up for 1 "
         "step (--warmup_steps)"),
        # counted from the data when training starts (48 rows / 4 = 12 steps): refused then, before any step
        (decay_schedule, ["--num_train_epochs", "1"], "scheduler.params.total_num_steps is 1000 but this run takes 12 "
         "steps (--max_steps, --num_train_epochs); scheduler.params.warmup_num_steps is 100 but this run warms up "
         "for 1 step (--warmup_steps)"),
    ],
    ids=["batch", "fp16", "lr", "schedule", "schedule-epochs"],
)  # fmt: skip
def test_a_guide_config_that_contradicts_the_flags_is_one_line(tmp_path, tiny_model_dir, records_dir, change, steps,
                                                               said):  # fmt: skip
    """Explicit numbers in a DeepSpeed config from a guide, against the command line: transformers raised a
    ValueError with a traceback once training started; now one line that names the file, the keys and flags."""
    from conftest import run_process

    config = guide_config(tmp_path, "guide.json", change)
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "run_clm.py"), "--deepspeed", config, "--model_name_or_path", str(tiny_model_dir),
           "--train_file", str(records_dir / "train.csv"), "--do_train", "--output_dir", str(out),
           "--per_device_train_batch_size", "4", "--report_to", "none", "--disable_tqdm", "true", *steps]  # fmt: skip
    proc = run_process(cmd, env=plain_env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: {config} contradicts the command line: {said}; set these to "auto" in {config} to take the command '
        "line's values, or pass flags that match"
    )
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # no step taken: nothing left behind


def test_zero3_with_weights_not_gathered_on_save_is_refused(tmp_path, tiny_model_dir, records_dir):
    """``"stage3_gather_16bit_weights_on_model_save": false`` saves a model folder without weights: one line, at once."""
    from conftest import run_process

    config = json.loads((ROOT / "ds_config_zero3.json").read_text())
    config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = False
    path = tmp_path / "zero3.json"
    path.write_text(json.dumps(config))
    cmd = [sys.executable, *tiny_run(tiny_model_dir, records_dir, tmp_path / "out")]
    cmd[cmd.index(str(ROOT / "ds_config.json"))] = str(path)
    proc = run_process(cmd, env=plain_env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: {path}: "stage3_gather_16bit_weights_on_model_save": false under ZeRO-3 saves the model without its '
        f"weights (no model.safetensors: pipeline(...) cannot load the output folder); set it to true in {path}"
    )
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_evaluation_alone_sets_aside_the_optimizer_of_a_training_config(tmp_path, tiny_model_dir, records_dir):
    """--do_eval alone under ZeRO-3 with a training config whose optimizer has an explicit lr: DeepSpeed evaluates
    without an optimizer, so that lr contradicts nothing (transformers raised its mismatch ValueError)."""
    from conftest import run_process

    config = json.loads((ROOT / "ds_config_zero3.json").read_text())
    config["optimizer"]["params"]["lr"] = 3e-5
    path = tmp_path / "zero3.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "run_clm.py"), "--deepspeed", str(path), "--model_name_or_path",
           str(tiny_model_dir), "--validation_file", str(records_dir / "validation.csv"), "--do_eval", "--output_dir",
           str(out), "--report_to", "none", "--disable_tqdm", "true"]  # fmt: skip
    proc = run_process(cmd, env=plain_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "all_results.json").read_text())["eval_samples"] == 8
