"""Samples during training and evaluation before it: what they write, and that training is unchanged."""

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TrainerControl, TrainerState, TrainingArguments

from domainlm.callbacks import SampleCallback, SamplePrompt, forked_rng, sample_prompts
from domainlm.errors import UserError
from domainlm.template import format_record
from domainlm.train import main


def load(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def test_prompts_from_validation_titles_and_keywords():
    rows = [
        format_record("Baker", ["bread", "oven"], "Bake daily."),
        "",
        None,
        format_record("  Night   Nurse ", "triage,  ward ", "Care."),
        "The night train crossed the frozen river slowly. Lamps burned on the far shore",
    ]
    assert sample_prompts(rows, 3) == [
        SamplePrompt("Baker<|SEP|>bread, oven<|SEP|>", "Baker", "bread, oven"),
        SamplePrompt("Night Nurse<|SEP|>triage, ward<|SEP|>", "Night Nurse", "triage, ward"),
        SamplePrompt("The night train crossed the frozen river slowly."),  # plain text: its first 8 words
    ]
    assert len(sample_prompts(rows, 1)) == 1


def test_forked_rng_leaves_every_generator_where_it_was():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with forked_rng():
        random.random(), np.random.rand(), torch.rand(3)
    after = (random.random(), float(np.random.rand()), torch.rand(3))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    assert after[:2] == (random.random(), float(np.random.rand()))
    assert torch.equal(after[2], torch.rand(3))


def test_resumed_run_keeps_only_the_samples_up_to_its_checkpoint(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    lines = [{"step": s, "text": f"{s}\u2028{s}"} for s in (2, 4, 6)]  # a line separator, as samples may hold
    (out / "samples.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines) + "not json\n")
    callback = SampleCallback([SamplePrompt("x")], tokenizer=None, every=2)
    args = TrainingArguments(output_dir=str(out), report_to="none")
    callback.on_train_begin(args, TrainerState(global_step=4), TrainerControl())
    assert [json.loads(x) for x in (out / "samples.jsonl").read_text().split("\n")[:-1]] == lines[:2]
    callback.on_train_begin(args, TrainerState(global_step=0), TrainerControl())  # a new run: none
    assert (out / "samples.jsonl").read_text() == ""


def argv(model_dir, data_dir, out, *extra):
    return ["--model_name_or_path", str(model_dir), "--train_file", str(data_dir / "train.csv"),
            "--validation_file", str(data_dir / "validation.csv"), "--do_train", "--do_eval", "--output_dir", str(out),
            "--max_steps", "4", "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--save_strategy",
            "no", "--report_to", "none", "--disable_tqdm", "true", "--seed", "5", *extra]  # fmt: skip


def test_samples_and_evaluation_before_training_leave_the_weights_unchanged(tmp_path, tiny_model_dir, records_dir):
    """Dropout is on (0.1) and sampling draws random numbers: without forking the RNG the weights would differ."""
    plain = main(argv(tiny_model_dir, records_dir, tmp_path / "plain"))
    out = tmp_path / "watched"
    watched = main(argv(tiny_model_dir, records_dir, out, "--sample_every_steps", "2", "--num_samples", "2",
                        "--sample_max_new_tokens", "5", "--eval_before_training"))  # fmt: skip
    a, b = load(tmp_path / "plain"), load(out)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert watched["train_loss"] == plain["train_loss"] and watched["eval_loss"] == plain["eval_loss"]

    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    validation = ["Restaurant Supervisor Intern", "Product Engineering Manager - Mobile Apps (Fixed Term, 12 Months)"]
    assert [(r["step"], r["title"]) for r in rows] == [(s, t) for s in (2, 4) for t in validation]
    assert rows[0]["keywords"] == "room service, team rostering, pastry, guest complaints, reservations, upselling"
    assert all(r["prompt"] == f"{r['title']}<|SEP|>{r['keywords']}<|SEP|>" and r["text"] for r in rows)

    # perplexity before and after, in the results and in all_results.json
    saved = json.loads((out / "all_results.json").read_text())
    for key in ("eval_before_loss", "eval_before_perplexity", "eval_before_accuracy", "eval_perplexity"):
        assert saved[key] == pytest.approx(watched[key])
    assert "eval_before_loss" not in plain
    assert watched["eval_before_perplexity"] > watched["eval_perplexity"]  # 4 steps at 1e-3 learn something


def test_evaluation_before_training_needs_do_eval(tmp_path, tiny_model_dir, records_dir, monkeypatch):
    """Said before the model loads and the data is tokenised (minutes for gpt2-xl)."""
    from conftest import forbid

    import domainlm.modeling

    forbid(monkeypatch, (domainlm.modeling, "load_model"), (domainlm.modeling, "load_tokenizer"))
    args = [
        a for a in argv(tiny_model_dir, records_dir, tmp_path / "out", "--eval_before_training") if a != "--do_eval"
    ]
    with pytest.raises(UserError, match=r"^--eval_before_training needs --do_eval \(and a validation split\)$"):
        main(args)


@pytest.mark.slow
def test_under_zero3_samples_and_evaluation_before_leave_the_weights_unchanged(tmp_path, tiny_model_dir, records_dir):
    """ZeRO-3 partitions the weights: generation gathers them, and must not move the run either."""
    from conftest import ROOT, free_port, run_process, script_env

    env = script_env(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    base = [sys.executable, str(ROOT / "run_clm.py"), "--deepspeed", str(ROOT / "ds_config_zero3.json")]
    for name, extra in (("plain", []), ("watched", ["--sample_every_steps", "2", "--num_samples", "2",
                                                    "--sample_max_new_tokens", "5", "--eval_before_training"])):  # fmt: skip
        proc = run_process([*base, *argv(tiny_model_dir, records_dir, tmp_path / name, *extra)], env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = load(tmp_path / "plain"), load(tmp_path / "watched")
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert len((tmp_path / "watched" / "samples.jsonl").read_text().splitlines()) == 2 * 2
    assert "| DeepSpeed | ZeRO stage 3 |" in (tmp_path / "watched" / "README.md").read_text()


def test_samples_during_training_keep_a_records_layout(tiny_model_dir):
    """As generate.py: after title<|SEP|>keywords<|SEP|> no third separator, however much the model wants one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerState

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    sep = tok.convert_tokens_to_ids("<|SEP|>")
    bonus = torch.zeros(model.get_output_embeddings().weight.shape[0])
    bonus[sep] = 1e4
    model.get_output_embeddings().register_forward_hook(lambda m, i, out: out + bonus)
    callback = SampleCallback([SamplePrompt("Baker<|SEP|>bread<|SEP|>", "Baker", "bread")], tok, every=1,
                              max_new_tokens=5)  # fmt: skip
    [row] = callback.generate(model, TrainerState(global_step=1))
    ids = tok(row["text"], add_special_tokens=False)["input_ids"]
    assert len(ids) >= 1 and sep not in ids
