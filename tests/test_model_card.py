"""The model card (README.md in the output folder), TensorBoard logs and the progress bar of a real run."""

from domainlm.model_card import CardFacts, render_model_card
from domainlm.train import main

FACTS = CardFacts(
    name="finetuned",
    architecture="GPT-2, 48 layers, 1600 wide, context 1024 tokens, 1,557,611,200 parameters",
    base_model="gpt2-xl",
    sequence_mode="records",
    block_size=1024,
    data={
        "train": {"file": "train.csv", "sequences": 38_120, "tokens": 12_345_678},
        "validation": {"file": "validation.csv", "sequences": 2_006, "tokens": 650_000},
    },
    hyperparameters={"learning rate": 5e-05, "effective batch": 128, "precision": "fp16", "DeepSpeed": "ZeRO stage 2"},
    results={
        "eval_before_loss": 3.4012,
        "eval_before_perplexity": 30.0,
        "eval_loss": 3.3058,
        "eval_perplexity": 27.27,
        "train_loss": 3.52,
    },
)


def test_card_text():
    assert render_model_card(FACTS) == "\n".join(
        [
            "---",
            "library_name: transformers",
            "pipeline_tag: text-generation",
            "base_model: gpt2-xl",
            "tags:",
            "- domainlm",
            "- text-generation",
            "---",
            "",
            "# finetuned",
            "",
            "GPT-2, 48 layers, 1600 wide, context 1024 tokens, 1,557,611,200 parameters; fine-tuned from `gpt2-xl` "
            "with domainlm's `run_clm.py`.",
            "",
            "## Use",
            "",
            "```python",
            "from transformers import pipeline",
            "",
            'generator = pipeline("text-generation", model="finetuned")',
            "print(generator('Data Scientist<|SEP|>python, sql<|SEP|>')[0][\"generated_text\"])",
            "```",
            "",
            "Prompts are `title<|SEP|>keyword, keyword<|SEP|>`, the layout of the training rows; the model writes the "
            "posting and stops at `<|endoftext|>`.",
            "",
            "## Data",
            "",
            "| split | data | sequences | tokens |",
            "|---|---|---|---|",
            "| train | train.csv | 38,120 | 12,345,678 |",
            "| validation | validation.csv | 2,006 | 650,000 |",
            "",
            "Sequence mode `records`, block size 1024 tokens.",
            "",
            "## Training",
            "",
            "| hyperparameter | value |",
            "|---|---|",
            "| learning rate | 5.00e-05 |",
            "| effective batch | 128 |",
            "| precision | fp16 |",
            "| DeepSpeed | ZeRO stage 2 |",
            "",
            "## Results",
            "",
            "Evaluation on the validation split:",
            "",
            "| metric | before training | after training |",
            "|---|---|---|",
            "| loss | 3.401 | 3.306 |",
            "| perplexity | 30 | 27.27 |",
            "",
            "- train loss: 3.52",
            "",
        ]
    )


def test_card_for_a_model_trained_from_scratch_on_plain_text():
    facts = CardFacts(name="poems", architecture="GPT-2", base_model=None, from_scratch="gpt2 with n_layer=4",
                      sequence_mode="concat", block_size=128)  # fmt: skip
    text = render_model_card(facts)
    assert "base_model" not in text
    assert "GPT-2; trained from scratch (gpt2 with n_layer=4) with domainlm's `run_clm.py`." in text
    assert "print(generator('Once upon a time')[0][\"generated_text\"])" in text
    assert "## Results" not in text and "## Training" not in text


def test_plain_rows_trained_as_records_get_a_plain_prompt_not_a_job_posting(tmp_path, tiny_model_dir):
    # jokes, one per row, trained with --sequence_mode records: no title, no keywords, no posting
    from conftest import write_text_csv

    jokes = [{"text": f"Joke {i}: the cat sat on the mat, then on the hat."} for i in range(8)]
    write_text_csv(tmp_path / "train.csv", jokes)
    main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(tmp_path / "train.csv"), "--do_train",
          "--sequence_mode", "records", "--max_steps", "1", "--per_device_train_batch_size", "4",
          "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--save_strategy", "no",
          "--disable_tqdm", "true"])  # fmt: skip
    card = (tmp_path / "out" / "README.md").read_text()
    assert "Sequence mode `records`" in card
    assert "print(generator('Once upon a time')[0][\"generated_text\"])" in card
    assert "<|SEP|>" not in card and "posting" not in card
    facts = CardFacts(name="jobs", architecture="GPT-2", base_model=None, sequence_mode="concat", job_records=True)
    assert "Prompts are `title<|SEP|>keyword, keyword<|SEP|>`" in render_model_card(facts)


def test_a_run_writes_its_card_tensorboard_logs_and_a_progress_bar(tmp_path, tiny_model_dir, records_dir, capsys):
    out = tmp_path / "out"
    results = main(
        ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"),
         "--validation_file", str(records_dir / "validation.csv"), "--do_train", "--do_eval", "--output_dir", str(out),
         "--max_steps", "4", "--per_device_train_batch_size", "8", "--learning_rate", "2e-3", "--logging_steps", "2",
         "--save_strategy", "no", "--eval_before_training", "--seed", "2"]
    )  # fmt: skip
    card = (out / "README.md").read_text()
    assert f"fine-tuned from `{tiny_model_dir}`" in card
    assert "GPT-2, 2 layers, 32 wide, context 256 tokens, 49,696 parameters" in card
    assert "| train | " in card and "| 48 | 7,553 |" in card  # 48 postings, their tokens
    assert "| learning rate | 0.002 |" in card and "| optimizer steps | 4 |" in card
    before, after = results["eval_before_perplexity"], results["eval_perplexity"]
    assert f"| perplexity | {before:,.4g} | {after:,.4g} |" in card
    assert after < before

    # TensorBoard by default (transformers 5 reports nowhere unless told): loss, and eval before and after
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "runs" / next((out / "runs").iterdir()).name))  # the run's folder
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4]
    perplexities = {e.step: e.value for e in acc.Scalars("eval/perplexity")}
    assert perplexities.keys() == {0, 4}
    assert abs(perplexities[0] - before) < 1e-4 * before and abs(perplexities[4] - after) < 1e-4 * after
    # the progress bar (stderr)
    assert "4/4 [" in capsys.readouterr().err


def test_the_card_states_what_was_trained_and_how(tmp_path, tiny_model_dir, records_dir):
    out = tmp_path / "out"
    main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"), "--do_train",
          "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "8", "--save_strategy", "no",
          "--report_to", "none", "--unfreeze_schedule", "0:1,1:all", "--layerwise_lr_decay", "0.8", "--loss_on", "body",
          "--shuffle_keywords", "--overlong", "truncate", "--warmup_ratio", "0.5", "--do_eval", "--validation_file",
          str(records_dir / "validation.csv")])  # fmt: skip
    card = (out / "README.md").read_text()
    assert (
        "Evaluation on the validation split (its postings' bodies and end-of-text alone, as trained with "
        "`--loss_on body`; title and keywords carry no loss):" in card
    )
    for row in ("| schedule | linear, warm-up over the first 50% of the steps (1 step) |",
                "| gradual unfreezing | 0:1,1:all (steps) |", "| layer-wise rate decay | x0.8 per layer group below the head |",
                "| loss on | the posting body and end-of-text (title and keywords masked) |",
                "| keyword order | reshuffled every epoch |", "| records over the block | truncate |"):  # fmt: skip
        assert row in card, row
    main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"), "--do_train",
          "--output_dir", str(tmp_path / "plain"), "--max_steps", "1", "--save_strategy", "no", "--report_to", "none",
          "--unfreeze_last_n", "1", "--warmup_steps", "10", "--do_eval", "--validation_file",
          str(records_dir / "validation.csv")])  # fmt: skip
    plain = (tmp_path / "plain" / "README.md").read_text()
    assert "| schedule | linear, 10 warm-up steps |" in plain
    assert "| trained | the last block, the final norm and the head |" in plain
    assert "loss on" not in plain and "keyword order" not in plain and "layer-wise" not in plain
    assert "Evaluation on the validation split:" in plain
