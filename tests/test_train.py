"""Training in-process (no DeepSpeed) on tiny models: what the saved folder does in pipeline()."""

import json
import math

import pytest
from conftest import crash_at_step, forbid, write_text_csv

from domainlm.errors import UserError
from domainlm.template import format_prompt, format_record
from domainlm.train import main

BODY = "Bake bread daily.\nClean the oven."
ROW = format_record("Baker", ["bread", "oven"], BODY)


def common(tmp_path, *extra):
    return ["--output_dir", str(tmp_path / "out"), "--report_to", "none", "--save_strategy", "no",
            "--disable_tqdm", "true", "--seed", "1", *extra]  # fmt: skip


def test_saved_folder_generates_with_sep_visible_and_stops_at_end_of_text(tmp_path, tiny_model_dir):
    from transformers import pipeline

    write_text_csv(tmp_path / "train.csv", [{"text": ROW}] * 32)
    results = main(
        ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(tmp_path / "train.csv"), "--do_train",
         "--max_train_samples", "16", "--num_train_epochs", "40", "--per_device_train_batch_size", "8",
         "--learning_rate", "5e-3",
         "--warmup_steps", "0", *common(tmp_path)]
    )  # fmt: skip
    assert results["sequence_mode"] == "records" and results["train_samples"] == 16
    assert results["train_loss"] < 2.0
    generator = pipeline("text-generation", model=str(tmp_path / "out"))  # no extra arguments
    prompt = format_prompt("Baker", ["bread", "oven"])
    out = generator(prompt)[0]["generated_text"]
    # the whole record comes back, <|SEP|> visible, and nothing after the end-of-text
    assert out == ROW


def test_from_scratch_on_a_plain_corpus_smaller_than_one_block(tmp_path, bpe_tokenizer_dir, caplog):
    import logging

    from transformers import AutoModelForCausalLM

    corpus = tmp_path / "train.txt"
    corpus.write_text(
        "The night train crossed the frozen river slowly.\nLamps burned on the far shore until morning.\n"
    )
    with caplog.at_level(logging.INFO, logger="domainlm"):
        results = main(
            ["--model_type", "gpt2", "--config_overrides", "n_layer=2,n_embd=32,n_head=2,n_positions=128",
             "--tokenizer_name", str(bpe_tokenizer_dir), "--train_file", str(corpus), "--validation_split_percentage", "0",
             "--do_train", "--do_eval", "--validation_file", str(corpus), "--num_train_epochs", "2",
             "--preprocessing_num_workers", "2", *common(tmp_path)]
        )  # fmt: skip
    assert results["sequence_mode"] == "concat" and results["block_size"] == 128
    # auto concatenates plain rows: the log says so, and how to keep each row whole
    assert any(
        m.startswith("--sequence_mode auto chose concat because the rows are plain text")
        and "blocks of 128 tokens" in m
        and "--sequence_mode records (or packed)" in m
        for m in caplog.messages
    )
    # a short block instead of a crash; with 2 workers each worker's shard gives its own (2 lines, 2 shards)
    assert results["train_samples"] == 2
    assert math.isfinite(results["eval_loss"])
    assert math.isclose(results["eval_perplexity"], math.exp(results["eval_loss"]), rel_tol=1e-6)
    assert 0.0 <= results["eval_accuracy"] <= 1.0
    saved = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert saved["eval_perplexity"] == pytest.approx(results["eval_perplexity"])
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert model.config.n_layer == 2 and model.config.n_positions == 128
    assert not (tmp_path / "out" / ".saving").exists()


def test_model_folder_without_weights(tmp_path, tiny_model_dir):
    empty = tmp_path / "model"
    empty.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (empty / name).write_bytes((tiny_model_dir / name).read_bytes())
    write_text_csv(tmp_path / "train.csv", [{"text": ROW}])
    with pytest.raises(UserError, match="the folder holds no weights"):
        main(["--model_name_or_path", str(empty), "--train_file", str(tmp_path / "train.csv"), "--do_train",
              *common(tmp_path)])  # fmt: skip


def test_hub_name_offline_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_text_csv(tmp_path / "train.csv", [{"text": ROW}])
    with pytest.raises(UserError) as err:
        main(["--model_name_or_path", "gpt2-xl", "--train_file", str(tmp_path / "train.csv"), "--do_train",
              *common(tmp_path)])  # fmt: skip
    assert "--model_name_or_path gpt2-xl: not a local folder" in str(err.value)


@pytest.mark.parametrize("name", ["./finetuned", "/no/such/model", "runs/gpt2/final", "~/models/gpt2"])
def test_a_path_that_does_not_exist_is_not_sent_to_the_hub(tmp_path, name):
    write_text_csv(tmp_path / "train.csv", [{"text": ROW}])
    with pytest.raises(UserError) as err:
        main(["--model_name_or_path", name, "--train_file", str(tmp_path / "train.csv"), "--do_train",
              *common(tmp_path)])  # fmt: skip
    assert str(err.value) == f"--model_name_or_path {name}: no such folder"


def test_bf16_without_a_gpu_trains_on_the_cpu_in_bfloat16(tmp_path, tiny_model_dir, caplog):
    """``--bf16`` without a GPU: ``--use_cpu`` is added (transformers would refuse), the Trainer autocasts
    to bfloat16 on the CPU, and the saved weights stay float32."""
    import logging

    import torch
    from accelerate.state import AcceleratorState
    from safetensors.torch import load_file

    write_text_csv(tmp_path / "train.csv", [{"text": ROW}] * 16)
    args = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(tmp_path / "train.csv"), "--do_train",
            "--do_eval", "--validation_file", str(tmp_path / "train.csv"), "--num_train_epochs", "1",
            "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--warmup_steps", "0"]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="domainlm.args"):
        results = main([*args, *common(tmp_path, "--bf16")])
    assert "--bf16 without a CUDA GPU: training on the CPU in bfloat16 (--use_cpu added)" in caplog.text
    assert AcceleratorState().mixed_precision == "bf16"
    assert math.isfinite(results["train_loss"]) and math.isfinite(results["eval_perplexity"])
    weights = load_file(tmp_path / "out" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}


@pytest.mark.parametrize(
    "argv, asks",
    [
        (["--bf16"], True),
        (["--bf16", "--do_train"], True),
        (["--bf16", "true"], True),
        (["--bf16=True"], True),
        (["--bf16", "false"], False),
        (["--bf16=no"], False),
        (["--bf16_full_eval"], True),
        (["--fp16"], False),
    ],
)
def test_bf16_flag_spellings(argv, asks):
    from domainlm.args import _asks_bf16

    assert _asks_bf16(argv) is asks


def test_block_size_over_the_context_is_lowered_to_it_as_in_4x(tmp_path, tiny_model_dir, caplog):
    """4.x run_clm used min(--block_size, the model's maximum) with a warning; 0 or less is refused in parsing."""
    import logging

    write_text_csv(tmp_path / "validation.csv", [{"text": ROW}] * 4)
    with caplog.at_level(logging.WARNING, logger="domainlm"):
        results = main(["--model_name_or_path", str(tiny_model_dir), "--validation_file",
                        str(tmp_path / "validation.csv"), "--do_eval", "--block_size", "1000", *common(tmp_path)])  # fmt: skip
    assert results["block_size"] == 256
    assert "--block_size 1000 is over the model's context of 256 tokens: using 256" in caplog.messages


@pytest.mark.parametrize("mode", ["concat", "auto"])
def test_overlong_rows_in_concat_mode_are_refused_in_one_line(tmp_path, tiny_model_dir, monkeypatch, mode):
    """concat cuts every row into blocks, so --overlong truncate|error would do nothing: said before any work."""
    import domainlm.modeling

    forbid(monkeypatch, (domainlm.modeling, "load_model"))
    write_text_csv(tmp_path / "train.csv", [{"text": "A plain line of a poem, not a record."}] * 4)
    with pytest.raises(UserError) as err:
        main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(tmp_path / "train.csv"), "--do_train",
              "--sequence_mode", mode, "--overlong", "error", *common(tmp_path)])  # fmt: skip
    chose = " (--sequence_mode auto chose concat: the rows are plain text)" if mode == "auto" else ""
    assert str(err.value) == (
        f"--overlong error does nothing in concat mode{chose}, which joins the rows and cuts them into --block_size "
        "blocks; pass --sequence_mode records (or packed) to keep rows whole"
    )


EVALUATION_FILES = ["eval_results.json", "eval_samples.jsonl", "keyword_coverage.png", "loss.png", "report.md"]


def test_a_new_run_leaves_no_file_of_the_earlier_run_that_would_describe_another_model(
    tmp_path, tiny_model_dir, records_dir, monkeypatch
):
    """--overwrite_output_dir over a finished, evaluated model: what the earlier run wrote while it trained
    (samples.jsonl, optimizer_groups.json) goes at the start; the earlier model's evaluation goes only once
    the new model is saved (a crash before that leaves it next to the weights it describes); the user's stay."""
    from domainlm.evaluation import run_evaluation
    from domainlm.generation import GenerationSettings

    out = tmp_path / "out"
    data = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"), "--do_train",
            "--max_steps", "2", "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--logging_steps", "1"]  # fmt: skip
    main([*data, "--sample_every_steps", "1", "--num_samples", "1", "--sample_max_new_tokens", "3",
          "--layerwise_lr_decay", "0.8", *common(tmp_path)])  # fmt: skip
    first_run = sorted(p.name for p in out.iterdir())
    assert {"samples.jsonl", "optimizer_groups.json", "model.safetensors"} <= set(first_run)
    assert [json.loads(line)["step"] for line in (out / "samples.jsonl").read_text().splitlines()] == [1, 2]
    run_evaluation(out, records_dir / "validation.csv", out, GenerationSettings(strategy="greedy", max_new_tokens=3),
                   num_prompts=1, base=None, progress=False)  # fmt: skip
    (out / "notes.txt").write_text("mine")
    (out / "runs").mkdir()
    (out / "runs" / "events.out.tfevents.1").write_bytes(b"\0")  # TensorBoard's log of the earlier run stays
    kept = {name: (out / name).read_bytes() for name in [*EVALUATION_FILES, "notes.txt", "model.safetensors"]}

    # the new run crashes before its model is saved: the earlier model keeps its description
    restore = crash_at_step(monkeypatch, 1, RuntimeError("power cut"))
    again = [*data, "--overwrite_output_dir", *common(tmp_path)]  # no samples, no layer groups this time
    with pytest.raises(RuntimeError, match=r"^power cut$"):
        main(again)
    assert not (out / "samples.jsonl").exists() and not (out / "optimizer_groups.json").exists()
    assert {name: (out / name).read_bytes() for name in kept} == kept
    run_files = {"samples.jsonl", "optimizer_groups.json"}
    assert sorted(p.name for p in out.iterdir()) == sorted({*first_run, *kept, "runs"} - run_files)

    # the new run saves its model: the earlier model's evaluation goes with it, the user's files stay
    restore()
    main(again)
    assert (out / "model.safetensors").read_bytes() != kept["model.safetensors"]
    assert (out / "notes.txt").read_text() == "mine" and (out / "runs" / "events.out.tfevents.1").read_bytes() == b"\0"
    assert sorted(p.name for p in out.iterdir()) == sorted({*first_run, "notes.txt", "runs"} - run_files)


def test_a_final_evaluation_that_fails_leaves_the_new_models_figures_not_the_replaced_ones(
    tmp_path, tiny_model_dir, records_dir, monkeypatch
):
    """--do_train --do_eval over an earlier run: the new model is saved, then its evaluation runs out of memory.
    all_results.json, trainer_state.json and README.md are the new run's (its seed, its steps, no eval_*
    figures of the replaced model), so evaluate_model.py and the model card do not describe another model."""
    from domainlm.trainer import DomainTrainer

    out = tmp_path / "out"
    data = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"), "--do_train",
            "--do_eval", "--validation_file", str(records_dir / "validation.csv"), "--per_device_train_batch_size",
            "8", "--per_device_eval_batch_size", "8", *common(tmp_path)]  # fmt: skip
    main([*data, "--max_steps", "3"])
    first = json.loads((out / "all_results.json").read_text())
    assert first["seed"] == 1 and "eval_loss" in first
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 3

    def out_of_memory(self, *args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(DomainTrainer, "evaluate", out_of_memory)
    with pytest.raises(RuntimeError, match=r"^out of memory$"):
        main([*data, "--max_steps", "2", "--overwrite_output_dir", "--seed", "5"])
    second = json.loads((out / "all_results.json").read_text())
    assert second["seed"] == 5 and second["train_samples"] == first["train_samples"]
    assert not [key for key in second if key.startswith("eval_")]
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    card = (out / "README.md").read_text()
    assert "| seed | 5 |" in card and "| seed | 1 |" not in card


def test_files_that_no_evaluation_wrote_stay_when_the_new_model_is_saved(tmp_path, tiny_model_dir, records_dir):
    """Only what evaluate_model.py wrote goes: its report (recognised by its text) and the files that report
    names and that are not newer than it; a plot or a report of one's own under the same name stays."""
    import os
    import shutil

    from domainlm.evaluation import earlier_evaluation, run_evaluation
    from domainlm.generation import GenerationSettings

    out = tmp_path / "out"
    shutil.copytree(tiny_model_dir, out)  # no trainer_state.json: the report has no loss curve
    run_evaluation(out, records_dir / "validation.csv", out, GenerationSettings(strategy="greedy", max_new_tokens=3),
                   num_prompts=1, base=None, progress=False)  # fmt: skip
    (out / "loss.png").write_bytes(b"mine")  # the report names no loss.png
    later = (out / "report.md").stat().st_mtime_ns + 10**10
    os.utime(out / "eval_samples.jsonl", ns=(later, later))  # rewritten by someone after the evaluation
    assert earlier_evaluation(out) == ["eval_results.json", "keyword_coverage.png", "report.md"]
    kept = {name: (out / name).read_bytes() for name in ("loss.png", "eval_samples.jsonl")}
    main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"), "--do_train",
          "--max_steps", "1", "--per_device_train_batch_size", "8", "--overwrite_output_dir", *common(tmp_path)])  # fmt: skip
    assert {name: (out / name).read_bytes() for name in kept} == kept
    assert not any((out / name).exists() for name in ("eval_results.json", "keyword_coverage.png", "report.md"))

    (out / "report.md").write_text("# Evaluation of `my model`\n\nBetter than the last one.\n")
    (out / "eval_results.json").write_text("{}")
    assert earlier_evaluation(out) == []  # a report of one's own: nothing is known to be an evaluation's


def test_evaluating_a_trained_folder_again_keeps_how_it_was_trained(tmp_path, tiny_model_dir, records_dir):
    """--do_eval alone into the trained folder: the new figures join all_results.json; the training figures,
    the seed and the starting model stay (evaluate_model.py --base_model init reads the last two)."""
    out = tmp_path / "out"
    data = ["--validation_file", str(records_dir / "validation.csv"), "--per_device_eval_batch_size", "8"]
    main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"), "--do_train",
          "--do_eval", "--max_steps", "2", "--per_device_train_batch_size", "8", *data, *common(tmp_path)])  # fmt: skip
    trained = json.loads((out / "all_results.json").read_text())
    assert trained["seed"] == 1 and trained["model_name_or_path"] == str(tiny_model_dir.resolve())
    main(["--model_name_or_path", str(out), "--do_eval", *data, "--output_dir", str(out), "--report_to", "none",
          "--disable_tqdm", "true"])  # fmt: skip
    again = json.loads((out / "all_results.json").read_text())
    for key in ("seed", "model_name_or_path", "train_loss", "train_samples", "epoch", "sequence_mode", "block_size"):
        assert again[key] == trained[key], key
    assert again["eval_loss"] == pytest.approx(trained["eval_loss"], rel=1e-5)  # the same weights, evaluated again

    # another model into the trained folder: refused, its record left as it was
    with pytest.raises(UserError, match=rf"^--output_dir {out} holds a trained model and its results; evaluating "):
        main(["--model_name_or_path", str(tiny_model_dir), "--do_eval", *data, "--output_dir", str(out)])
    assert json.loads((out / "all_results.json").read_text()) == again

    # into a folder of its own: the evaluation's figures, no seed or starting model (nothing was trained)
    alone = tmp_path / "alone"
    main(["--model_name_or_path", str(out), "--do_eval", *data, "--output_dir", str(alone), "--report_to", "none",
          "--disable_tqdm", "true"])  # fmt: skip
    results = json.loads((alone / "all_results.json").read_text())
    assert "seed" not in results and "model_name_or_path" not in results and "train_loss" not in results
    assert results["eval_loss"] == pytest.approx(trained["eval_loss"], rel=1e-5) and results["eval_samples"] == 8


def test_the_saved_tokenizer_cuts_at_the_models_context(tmp_path, bpe_tokenizer_dir, records_dir):
    """A tokenizer made for 256 tokens beside a model of 64 positions: the saved folder's tokenizer says 64,
    so truncation=True gives what the model takes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    main(["--model_type", "gpt2", "--config_overrides", "n_layer=1,n_embd=16,n_head=2,n_positions=64",
          "--tokenizer_name", str(bpe_tokenizer_dir), "--train_file", str(records_dir / "train.csv"), "--do_train",
          "--max_steps", "1", "--overlong", "truncate", *common(tmp_path)])  # fmt: skip
    assert AutoTokenizer.from_pretrained(bpe_tokenizer_dir).model_max_length == 256  # the source is left as it was
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert tokenizer.model_max_length == 64
    ids = tokenizer("bread " * 300, truncation=True, return_tensors="pt")["input_ids"]
    assert ids.shape == (1, 64)
    AutoModelForCausalLM.from_pretrained(tmp_path / "out")(ids)  # 65 would be past the position table


def test_disable_tqdm_hides_every_progress_bar(tmp_path, tiny_model_dir, records_dir, capsys):
    """--disable_tqdm true (launch.sh's): no bar of the Trainer, nor of datasets (tokenising) or transformers
    (loading and writing weights) in the log."""
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"), "--do_train",
            "--max_steps", "1", "--per_device_train_batch_size", "8", "--overwrite_cache", *common(tmp_path)]  # fmt: skip
    main(argv)
    err = capsys.readouterr().err
    assert "it/s]" not in err and "examples/s]" not in err, err[-2000:]
    assert (tmp_path / "out" / "model.safetensors").is_file()
    main([a if a != "true" else "false" for a in argv] + ["--overwrite_output_dir"])  # the bars, as asked
    err = capsys.readouterr().err
    assert "examples/s]" in err and "1/1 [" in err


def test_evaluating_again_with_another_loss_on_drops_the_earlier_evaluations_figures(tmp_path):
    """--do_eval alone with the --loss_on that training used keeps training's 'before' figures; with another one
    they measured other tokens (bodies alone against whole texts) and go, so that no report sets them side by side."""
    from domainlm.train import evaluation_only_results

    trained = {"seed": 1, "loss_on": "body", "train_loss": 3.0, "eval_loss": 2.0, "eval_before_loss": 4.0}
    (tmp_path / "all_results.json").write_text(json.dumps(trained))
    whole = {"block_size": 64, "seed": 42, "eval_loss": 3.0, "eval_samples": 8}
    assert evaluation_only_results(tmp_path, whole) == {
        "seed": 1, "train_loss": 3.0, "eval_loss": 3.0, "block_size": 64, "eval_samples": 8}  # fmt: skip
    body = {**whole, "loss_on": "body"}
    assert evaluation_only_results(tmp_path, body) == {
        "seed": 1, "train_loss": 3.0, "eval_loss": 3.0, "eval_before_loss": 4.0, "block_size": 64, "eval_samples": 8,
        "loss_on": "body"}  # fmt: skip
