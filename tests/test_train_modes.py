"""Training with packing, body-only loss and keyword shuffling, in-process on a tiny model."""

import json
import math

from conftest import record_rows, write_text_csv

from domainlm.train import main


def test_packed_body_loss_shuffled_keywords(tmp_path, tiny_model_dir):
    from transformers import AutoConfig, pipeline

    from domainlm.template import format_prompt

    out = tmp_path / "out"
    rows = record_rows(40, words=8)
    write_text_csv(tmp_path / "train.csv", rows[:32])
    write_text_csv(tmp_path / "validation.csv", rows[32:])
    results = main(
        ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(tmp_path / "train.csv"),
         "--validation_file", str(tmp_path / "validation.csv"), "--do_train", "--do_eval",
         "--sequence_mode", "packed", "--loss_on", "body", "--shuffle_keywords", "--num_train_epochs", "2",
         "--per_device_train_batch_size", "2", "--output_dir", str(out), "--report_to", "none",
         "--save_strategy", "no", "--disable_tqdm", "true"]
    )  # fmt: skip
    assert results["sequence_mode"] == "packed"
    # 32 short records packed into 256-token rows: far fewer rows than records
    assert results["train_samples"] < 32 / 2
    assert math.isfinite(results["train_loss"]) and math.isfinite(results["eval_loss"])
    assert AutoConfig.from_pretrained(out).use_cache is True  # the saved folder generates with a cache
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] > 0
    text = pipeline("text-generation", model=str(out))(format_prompt("Chef", ["haccp"]), max_new_tokens=5)
    assert text[0]["generated_text"].startswith("Chef<|SEP|>haccp<|SEP|>")


def test_packed_rows_on_eager_attention_do_not_warn_about_a_missing_attention_mask(tmp_path, tiny_model_dir, caplog):
    """Unflattened packed rows end in pads and have no mask, by design: transformers' warning is dropped."""
    from transformers.utils import logging as hf_logging

    rows = record_rows(24, words=8)
    write_text_csv(tmp_path / "train.csv", rows)
    hf_logging.get_logger("transformers.modeling_utils").warning_once.cache_clear()  # said once per process
    with caplog.at_level("WARNING"):
        main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(tmp_path / "train.csv"), "--do_train",
              "--sequence_mode", "packed", "--attn_implementation", "eager", "--max_steps", "2",
              "--per_device_train_batch_size", "2", "--output_dir", str(tmp_path / "out"), "--report_to", "none",
              "--save_strategy", "no", "--disable_tqdm", "true"])  # fmt: skip
    assert "attention_mask" not in caplog.text
