"""``bash launch.sh``, the first command of the README, on a small setting."""

import csv
import json
import os
import signal

import pytest
from conftest import ROOT, run_command, run_process, script_env

pytestmark = pytest.mark.slow


SMALL = {
    "EPOCHS": "1",
    "MAX_WORDS": "250",
    "VOCAB_SIZE": "600",
    "MODEL_CONFIG": "n_layer=2,n_embd=64,n_head=2,n_positions=512",
    "BLOCK_SIZE": "512",
    "NUM_SAMPLES": "2",
    "EVAL_PROMPTS": "3",
}


def launch_command(**settings: str) -> list[str]:
    env = " ".join(f"{k}='{v}'" for k, v in settings.items())
    return ["bash", "-c", f"{env} bash {ROOT / 'launch.sh'}"]


def test_launch_runs_the_whole_job(tmp_path):
    settings = {**SMALL, "WORK_DIR": str(tmp_path / "work")}
    proc = run_command(launch_command(**settings), cwd=tmp_path)
    log = proc.stdout
    for step in ("1/5 preparing", "2/5 training a byte-level BPE tokenizer", "3/5 fine-tuning with DeepSpeed",
                 "4/5 generating 2 postings", "5/5 evaluating", "done in"):  # fmt: skip
        assert step in log, step
    work = tmp_path / "work"
    stats = json.loads((work / "data" / "prepare_stats.json").read_text())
    assert stats["kept"] + sum(stats["dropped"].values()) == stats["read"] == 240
    results = json.loads((work / "finetuned" / "all_results.json").read_text())
    assert results["sequence_mode"] == "records" and results["eval_perplexity"] > 1
    samples = [json.loads(line) for line in (work / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and all(s["prompt"].count("<|SEP|>") == 2 and s["title"] for s in samples)
    # no --max_new_tokens: one batch of both, given all the room its longer prompt leaves in the 512 positions
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(work / "finetuned")
    longest = max(len(tok(s["prompt"], add_special_tokens=False)["input_ids"]) for s in samples)
    assert [s["max_new_tokens"] for s in samples] == [512 - longest] * 2
    assert all(s["stopped_at_eos"] or s["new_tokens"] == s["max_new_tokens"] for s in samples)
    assert os.path.isdir(work / "finetuned" / "runs")  # TensorBoard logs
    evaluation = json.loads((work / "finetuned" / "eval_results.json").read_text())
    assert evaluation["prompts"] == 3 and set(evaluation["conditions"]) == {"conditioned", "title_only", "reference"}
    ppl = evaluation["perplexity"]
    assert ppl["after"] < ppl["before"]  # one epoch beats a freshly initialised model
    report = (work / "finetuned" / "report.md").read_text()
    assert "keyword_coverage.png" in report and "loss.png" in report
    assert (work / "finetuned" / "keyword_coverage.png").stat().st_size > 1000
    assert "keyword coverage over 3 prompts" in log

    # Again in the same folder, from a CSV with other column names, packed, without the evaluation: the
    # model is replaced and the earlier model's report goes with it.
    with open(ROOT / "data" / "jobs_sample.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    renamed = tmp_path / "postings.csv"
    with open(renamed, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["job_title", "tags", "description"])
        writer.writerows([r["title"], r["keywords"], r["text"]] for r in rows)
    again = {**settings, "DATA": str(renamed), "EVAL_PROMPTS": "0", "TRAIN_ARGS": "--sequence_mode packed",
             "PREPARE_ARGS": "--title_column job_title --text_column description --keywords_column tags"}  # fmt: skip
    log = run_command(launch_command(**again), cwd=tmp_path).stdout
    assert f"replacing the model in {work / 'finetuned'}" in log and "5/5" not in log
    assert log.rstrip().endswith(
        f"model in {work / 'finetuned'}, no report (EVAL_PROMPTS=0), samples in {work / 'samples.jsonl'}"
    )
    assert json.loads((work / "data" / "prepare_stats.json").read_text())["read"] == 240
    assert json.loads((work / "finetuned" / "all_results.json").read_text())["sequence_mode"] == "packed"
    for name in ("report.md", "eval_results.json", "eval_samples.jsonl", "loss.png", "keyword_coverage.png"):
        assert not (work / "finetuned" / name).exists(), name

    # The output folder as the model to start from: refused before any work, the model left as it was.
    weights = (work / "finetuned" / "model.safetensors").read_bytes()
    proc = run_process(launch_command(**settings, MODEL=str(work / "finetuned")), cwd=tmp_path, env=script_env())
    assert proc.returncode == 2 and "1/5" not in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: MODEL={work / 'finetuned'} is the output folder {work}/finetuned: the run would replace the model "
        "it starts from; copy it to another folder first, or set WORK_DIR to another folder"
    )
    assert (work / "finetuned" / "model.safetensors").read_bytes() == weights


FAKE_DEEPSPEED = """#!/usr/bin/env bash
# Records its arguments, and what a fresh shell on another machine gets after sourcing --venv_script
# (pdsh's ssh shell: no variable of the launching shell), then fails so that launch.sh stops.
printf '%s\\n' "$@" >"$RECORD/args"
while [[ $# -gt 0 && "$1" != --venv_script ]]; do shift; done
env -i HOME="$HOME" PATH=/usr/bin:/bin bash -c "source '$2'; env; command -v python" >"$RECORD/node_env"
exit 3
"""


def test_hostfile_run_gives_every_machine_the_environment(tmp_path):
    """With HOSTFILE, DeepSpeed starts each machine's processes over ssh in a fresh shell, where neither the
    virtual environment (DeepSpeed then finds no ninja for its compiled ops) nor HF_HUB_OFFLINE would be:
    launch.sh hands deepspeed a --venv_script that sets them. Relative paths are read from the folder the
    command starts in (the data, the hostfile, the work folder), or from the repository (DS_CONFIG)."""
    import shutil
    import sys

    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    (bin_dir / "deepspeed").write_text(FAKE_DEEPSPEED)
    (bin_dir / "deepspeed").chmod(0o755)
    (tmp_path / "hostfile").write_text("worker-1 slots=1\nworker-2 slots=1\n")
    venv = sys.prefix
    # script_env sets HF_HUB_OFFLINE=1
    env = script_env(RECORD=str(record), VIRTUAL_ENV=venv, PATH=f"{bin_dir}:{venv}/bin:{os.environ['PATH']}",
                     MASTER_PORT="29777")  # fmt: skip
    shutil.copy(ROOT / "data" / "jobs_sample.csv", tmp_path / "postings.csv")
    settings = {**SMALL, "WORK_DIR": "work", "HOSTFILE": "hostfile", "DATA": "postings.csv",
                "DS_CONFIG": "ds_config_zero3.json"}  # fmt: skip
    proc = run_process(launch_command(**settings), cwd=tmp_path, env=env)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert f"read 240 postings from {tmp_path / 'postings.csv'}" in proc.stdout
    args = (record / "args").read_text().splitlines()
    node_env = str(tmp_path / "work" / "deepspeed_node_env.sh")
    assert args[:9] == ["--hostfile", str(tmp_path / "hostfile"), "--master_port", "29777", "--venv_script", node_env,
                        "run_clm.py", "--deepspeed", "ds_config_zero3.json"]  # fmt: skip
    assert args[args.index("--train_file") + 1] == str(tmp_path / "work" / "data" / "train.csv")
    seen = (record / "node_env").read_text().splitlines()
    assert {"HF_HUB_OFFLINE=1", "TOKENIZERS_PARALLELISM=false", f"VIRTUAL_ENV={venv}"} <= set(seen)
    assert next(line for line in seen if line.startswith("PATH=")).startswith(f"PATH={venv}/bin:")
    assert seen[-1] == f"{venv}/bin/python"


def signal_when(settings: dict[str, str], cwd, log, ready, signum: int) -> int:
    """Start launch.sh in a process group of its own, its output in ``log``; once ``ready()``, send ``signum``
    to the whole group (as a terminal does) and return the script's exit status."""
    import subprocess
    import time

    def as_a_terminal_starts_it() -> None:
        # SIGINT at its default, as for a job a terminal starts: a test run started in the background (`... &`)
        # ignores it, and a shell that starts with it ignored cannot trap it (launch.sh's Ctrl-C line)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with open(log, "w") as out:
        proc = subprocess.Popen(launch_command(**settings), cwd=cwd, env=script_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=as_a_terminal_starts_it)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        os.killpg(proc.pid, signum)
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_ctrl_c_during_training_ends_with_one_line_and_status_130(tmp_path):
    """Ctrl-C in the terminal reaches every process of the job: the DeepSpeed command prints no traceback,
    the rank says how to go on, and launch.sh stops with the shell's status for it."""
    work = tmp_path / "work"
    settings = {**SMALL, "EPOCHS": "200", "EVAL_PROMPTS": "0", "WORK_DIR": str(work), "TRAIN_ARGS": "--logging_steps 1"}
    log = tmp_path / "log.txt"
    # what the terminal does on Ctrl-C: SIGINT to the whole foreground group
    returncode = signal_when(settings, tmp_path, log, lambda: "'loss'" in log.read_text(), signal.SIGINT)
    text = log.read_text()
    assert returncode == 130, text[-3000:]
    assert "Traceback" not in text and "4/5" not in text
    assert (
        f"interrupted; no checkpoint in {work / 'finetuned'} yet to continue from: the same command starts afresh"
        in text
    )


def test_the_same_command_after_a_kill_continues_from_the_last_checkpoint(tmp_path):
    """kill -9 during training; launch.sh again goes on from the last checkpoint, on the data and tokenizer it
    trained on, and removes the checkpoint once the model is saved. A checkpoint kept after a finished run
    (KEEP_CHECKPOINTS=1) is not taken for an interrupted one."""
    work = tmp_path / "work"
    out = work / "finetuned"
    settings = {**SMALL, "EVAL_PROMPTS": "0", "NUM_SAMPLES": "1", "WORK_DIR": str(work), "SAVE_STEPS": "2"}
    first = {**settings, "TRAIN_ARGS": "--max_steps 100000 --logging_steps 1"}
    checkpoint = lambda: bool(list(out.glob("checkpoint-*/trainer_state.json")))  # noqa: E731
    signal_when(first, tmp_path, tmp_path / "first.log", checkpoint, signal.SIGKILL)
    steps = [int(p.parent.name.split("-")[1]) for p in out.glob("checkpoint-*/trainer_state.json")]
    last = max(steps)
    data = {name: (work / name).read_bytes() for name in ("data/train.csv", "tokenizer/tokenizer.json")}

    again = {**settings, "TRAIN_ARGS": f"--max_steps {last + 2}", "KEEP_CHECKPOINTS": "1"}
    proc = run_command(launch_command(**again), cwd=tmp_path)
    log = proc.stdout
    assert "1/5 keeping the prepared data" in log and "2/5 keeping the tokenizer" in log
    assert f"continuing the interrupted run from the last checkpoint in {out}" in log
    assert f"continuing from {out / f'checkpoint-{last}'}" in proc.stdout + proc.stderr  # run_clm.py's own line
    assert {name: (work / name).read_bytes() for name in data} == data
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == last + 2
    assert [p.name for p in out.glob("checkpoint-*")] == [f"checkpoint-{last + 2}"]  # kept, as asked

    log = run_command(launch_command(**{**again, "KEEP_CHECKPOINTS": "0"}), cwd=tmp_path).stdout
    assert "continuing" not in log and f"replacing the model in {out}" in log and "1/5 preparing" in log
    assert not list(out.glob("checkpoint-*"))  # the finished run's model is saved: no checkpoint stays
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == last + 2
