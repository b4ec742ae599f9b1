"""``bash launch.sh``, the first command of the README, on a small setting."""

import json
import os

import pytest
from conftest import ROOT, run_command

pytestmark = pytest.mark.slow


def test_launch_runs_the_whole_job(tmp_path):
    settings = {
        "WORK_DIR": str(tmp_path / "work"),
        "EPOCHS": "1",
        "MAX_WORDS": "250",
        "VOCAB_SIZE": "600",
        "MODEL_CONFIG": "n_layer=2,n_embd=64,n_head=2,n_positions=512",
        "BLOCK_SIZE": "512",
        "NUM_SAMPLES": "2",
        "EVAL_PROMPTS": "3",
    }
    env = " ".join(f"{k}={v}" for k, v in settings.items())
    proc = run_command(["bash", "-c", f"{env} bash {ROOT / 'launch.sh'}"], cwd=tmp_path)
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
    assert os.path.isdir(work / "finetuned" / "runs")  # TensorBoard logs
    evaluation = json.loads((work / "finetuned" / "eval_results.json").read_text())
    assert evaluation["prompts"] == 3 and set(evaluation["conditions"]) == {"conditioned", "title_only", "reference"}
    ppl = evaluation["perplexity"]
    assert ppl["after"] < ppl["before"]  # one epoch beats a freshly initialised model
    report = (work / "finetuned" / "report.md").read_text()
    assert "keyword_coverage.png" in report and "loss.png" in report
    assert (work / "finetuned" / "keyword_coverage.png").stat().st_size > 1000
    assert "keyword coverage over 3 prompts" in log
