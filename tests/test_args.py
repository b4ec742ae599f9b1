import json
import os
from types import SimpleNamespace

import pytest

from domainlm.args import parse_args, translate_legacy_argv, translate_legacy_dict
from domainlm.errors import UserError

BASE = ["--model_type", "gpt2", "--tokenizer_name", "tok", "--train_file", "t.csv", "--do_train"]


def test_legacy_flags_are_translated():
    argv = [
        "--evaluation_strategy=steps",
        "--eval_steps",
        "200",
        "--overwrite_output_dir",
        "--evaluation_strategy",
        "epoch",
        "--no_cuda",
        "--group_by_length",
        "--save_safetensors",
        "true",
        "--per_gpu_train_batch_size",
        "4",
    ]
    assert translate_legacy_argv(argv) == [
        "--eval_strategy=steps",
        "--eval_steps",
        "200",
        "--overwrite_output_dir",
        "--eval_strategy=epoch",
        "--use_cpu",
        "--train_sampling_strategy",
        "group_by_length",
        "--per_device_train_batch_size=4",
    ]


def test_legacy_keys_in_a_json_file():
    assert translate_legacy_dict(
        {"evaluation_strategy": "steps", "group_by_length": True, "save_safetensors": True}
    ) == {
        "eval_strategy": "steps",
        "train_sampling_strategy": "group_by_length",
    }


def test_guide_flags_parse_and_fp16_falls_back_on_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", "")  # restored after the test
    model, data, run, training = parse_args(
        [*BASE, "--output_dir", str(tmp_path), "--fp16", "--overwrite_cache", "--evaluation_strategy=steps",
         "--eval_steps", "200", "--overwrite_output_dir", "--logging_dir", str(tmp_path / "tb")]
    )  # fmt: skip
    assert training.eval_strategy == "steps" and training.eval_steps == 200
    assert data.overwrite_cache and run.overwrite_output_dir
    assert training.fp16 is False  # no CUDA here: logged fallback to fp32
    assert training.dataloader_pin_memory is False  # nothing to pin to, and each DataLoader would warn
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "tb")


def test_a_single_json_file_is_the_whole_command_line(tmp_path):
    options = {
        "model_type": "gpt2",
        "tokenizer_name": "tok",
        "train_file": "t.csv",
        "do_train": True,
        "output_dir": str(tmp_path / "out"),
        "evaluation_strategy": "epoch",
        "block_size": 64,
    }
    path = tmp_path / "options.json"
    path.write_text(json.dumps(options))
    model, data, run, training = parse_args([str(path)])
    assert (model.model_type, data.block_size, training.eval_strategy) == ("gpt2", 64, "epoch")
    path.write_text(json.dumps({"output_dir": str(tmp_path / "out"), "no_such_option": 1}))
    with pytest.raises(
        UserError, match=rf"^{path}: unknown options \['no_such_option'\]; see python run_clm.py --help$"
    ):
        parse_args([str(path)])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--train_file", "t.csv", "--do_train", "--output_dir", "o"], "give --model_name_or_path"),
        ([*BASE, "--output_dir", "o", "--no_such_flag", "1"], "unknown flags ['--no_such_flag', '1']"),
        (["--output_dir", "o", "--no_such_flag"], "unknown flags ['--no_such_flag']"),  # said before the rest
        ([*BASE[:-1], "--output_dir", "o"], "nothing to do"),
        (
            ["--model_name_or_path", "m", "--config_overrides", "n_layer=2", "--do_eval", "--output_dir", "o"],
            "only applies",
        ),
        (["--model_type", "llama", "--do_train", "--output_dir", "o"], "supported types"),
        (
            ["--model_type", "gpt2", "--train_file", "t.parquet", "--do_train", "--output_dir", "o"],
            "--train_file t.parquet",
        ),
    ],
)
def test_bad_flags_get_one_clear_line(argv, message):
    with pytest.raises(UserError, match=None) as err:
        parse_args(argv)
    assert message in str(err.value)


def test_help_lists_the_accepted_4x_flags(capsys):
    from domainlm.args import LEGACY_FLAGS, LEGACY_SWITCHES

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    printed = " ".join(capsys.readouterr().out.split())  # argparse wraps the epilog
    for old in [*LEGACY_FLAGS, *LEGACY_SWITCHES]:
        assert f"--{old} (" in printed
    assert "--evaluation_strategy (--eval_strategy)" in printed
    assert "--group_by_length (--train_sampling_strategy group_by_length)" in printed


def test_help_shows_the_scripts_own_defaults(capsys):
    """run_clm.py logs to TensorBoard unless --report_to says otherwise (transformers 5 says none)."""
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    printed = " ".join(capsys.readouterr().out.split())
    report_to = printed[printed.index("--report_to REPORT_TO [REPORT_TO ...], --report-to") :][:400]
    assert "(default: tensorboard)" in report_to and "(default: none)" not in report_to
    assert "D times slower" not in printed and "each block below at D times the rate of the one above" in printed


def test_report_to_defaults_to_tensorboard_and_stays_settable(tmp_path):
    *_, training_args = parse_args([*BASE, "--output_dir", str(tmp_path / "a")])
    assert training_args.report_to == ["tensorboard"]
    *_, training_args = parse_args([*BASE, "--output_dir", str(tmp_path / "b"), "--report_to", "none"])
    assert training_args.report_to == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--block_size", "0"], "--block_size 0: must be at least 1; leave it out for the model's context (at most 1024)"),
        (["--block_size", "-5"], "--block_size -5: must be at least 1; leave it out for the model's context (at most 1024)"),
        (["--max_train_samples", "0"], "--max_train_samples 0: must be at least 1; leave it out to keep every sequence"),
        (["--max_eval_samples", "-3"], "--max_eval_samples -3: must be at least 1; leave it out to keep every sequence"),
        # the Trainer took one step for --max_steps 0 and none for 0 epochs, and saved the model as fine-tuned
        (["--max_steps", "0"], "--max_steps 0: must be at least 1; leave it out to train for --num_train_epochs"),
        (
            ["--num_train_epochs", "0"],
            "--num_train_epochs 0: must be above 0, or nothing trains and the starting weights are saved as the "
            "fine-tuned model; or give --max_steps",
        ),
    ],
)  # fmt: skip
def test_sizes_below_one_are_refused(tmp_path, flags, message):
    with pytest.raises(UserError) as err:
        parse_args([*BASE, "--output_dir", str(tmp_path / "out"), *flags])
    assert str(err.value) == message
    assert not (tmp_path / "out").exists()


def test_zero_steps_are_fine_without_training_and_max_steps_wins_over_epochs(tmp_path):
    evaluate = ["--model_type", "gpt2", "--tokenizer_name", "tok", "--validation_file", "v.csv", "--do_eval"]
    assert parse_args([*evaluate, "--output_dir", str(tmp_path / "a"), "--max_steps", "0"])[3].max_steps == 0
    flags = ["--num_train_epochs", "0", "--max_steps", "3"]
    assert parse_args([*BASE, "--output_dir", str(tmp_path / "b"), *flags])[3].max_steps == 3


def test_unset_block_size_stays_the_default(tmp_path):
    assert parse_args([*BASE, "--output_dir", str(tmp_path / "out")])[1].block_size is None


def test_an_output_dir_that_is_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(UserError) as err:
        parse_args([*BASE, "--output_dir", str(tmp_path / "afile")])
    assert str(err.value) == f"--output_dir {tmp_path / 'afile'} is a file; give a folder"
    assert (tmp_path / "afile").read_text() == "keep me"


@pytest.mark.parametrize("form", ["command line", "options file"])
def test_a_missing_or_malformed_deepspeed_config_is_one_line(tmp_path, monkeypatch, form):
    """Checked before DeepSpeed starts: no process group, no environment set for one."""
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    bad = tmp_path / "ds_bad.json"
    bad.write_text('{"train_batch_size": "auto",\n}\n')
    missing = tmp_path / "nope.json"
    for config, message in (
        (missing, f"--deepspeed {missing}: no such file"),
        (bad, f"{bad}: line 2: invalid JSON (Expecting property name enclosed in double quotes)"),
    ):
        if form == "command line":
            argv = [*BASE, "--output_dir", str(tmp_path / "out"), "--deepspeed", str(config)]
        else:
            options = {"model_type": "gpt2", "tokenizer_name": "tok", "train_file": "t.csv", "do_train": True,
                       "output_dir": str(tmp_path / "out"), "deepspeed": str(config)}  # fmt: skip
            (tmp_path / "options.json").write_text(json.dumps(options))
            argv = [str(tmp_path / "options.json")]
        with pytest.raises(UserError) as err:
            parse_args(argv)
        assert str(err.value) == message
    assert "RANK" not in os.environ and "MASTER_PORT" not in os.environ


def test_an_options_file_that_is_not_an_object(tmp_path):
    path = tmp_path / "options.json"
    path.write_text('["--do_train"]')
    with pytest.raises(UserError) as err:
        parse_args([str(path)])
    assert str(err.value) == f'{path}: expected a JSON object of options, such as {{"do_train": true}}'


def test_one_set_of_boolean_words_for_every_flag():
    import argparse

    from domainlm.args import parse_bool

    assert [parse_bool(w) for w in ("true", "Yes", "y", "T", "1")] == [True] * 5
    assert [parse_bool(w) for w in ("false", "NO", "n", "f", "0")] == [False] * 5
    with pytest.raises(argparse.ArgumentTypeError, match=r"^'maybe': give true or false$"):
        parse_bool("maybe")
    # the 4.x switch takes the same words as its value
    assert translate_legacy_argv(["--group_by_length", "t"]) == ["--train_sampling_strategy", "group_by_length"]
    assert translate_legacy_argv(["--group_by_length", "n", "--do_train"]) == ["--do_train"]


def test_warmup_ratio_of_4x_is_warmup_steps_below_one(tmp_path):
    """transformers 5 dropped --warmup_ratio; --warmup_steps below 1 is the same fraction of the steps."""
    assert translate_legacy_argv(["--warmup_ratio", "0.1", "--do_train"]) == ["--do_train", "--warmup_steps", "0.1"]
    assert translate_legacy_argv(["--warmup_steps", "0", "--warmup_ratio=0.2"]) == [
        "--warmup_steps", "0", "--warmup_steps", "0.2"]  # fmt: skip
    # as in 4.x, --warmup_steps over 0 decides
    assert translate_legacy_argv(["--warmup_ratio", "0.1", "--warmup_steps", "5"]) == ["--warmup_steps", "5"]
    assert translate_legacy_dict({"warmup_ratio": 0.25, "adafactor": True}) == {
        "warmup_steps": 0.25,
        "optim": "adafactor",
    }
    for bad in ("1", "1.5", "-0.1", "ten"):
        with pytest.raises(UserError, match=rf"--warmup_ratio {bad}: give a fraction of the training steps"):
            translate_legacy_argv(["--warmup_ratio", bad])
    _, _, _, training = parse_args(
        [*BASE, "--output_dir", str(tmp_path), "--warmup_ratio", "0.1", "--adafactor", "--fp16_opt_level", "O2"]
    )
    assert training.warmup_steps == 0.1 and training.get_warmup_steps(50) == 5
    assert training.optim == "adafactor"


def test_upstream_loading_flags_of_4x_are_accepted(caplog):
    """Upstream run_clm's --use_auth_token (true, or a token), --low_cpu_mem_usage and --use_fast_tokenizer:
    a token becomes --token, the rest are what transformers 5 does anyway (a false fast tokenizer warns)."""
    argv = ["--use_auth_token", "--low_cpu_mem_usage", "true", "--use_fast_tokenizer", "false",
            "--use_auth_token", "hf_abc", "--use_auth_token=hf_def", "--do_train"]  # fmt: skip
    with caplog.at_level("INFO", logger="domainlm.args"):
        assert translate_legacy_argv(argv) == ["--token=hf_abc", "--token=hf_def", "--do_train"]
    assert "--use_fast_tokenizer false is ignored: transformers 5 has fast tokenizers only" in caplog.text
    assert translate_legacy_dict({"use_auth_token": "hf_x", "low_cpu_mem_usage": True, "use_fast_tokenizer": True}) == {
        "token": "hf_x"
    }
    assert translate_legacy_dict({"use_auth_token": True}) == {}
    assert translate_legacy_dict({"dtype": "bfloat16"}) == {"torch_dtype": "bfloat16"}  # --dtype's name in a file
    with pytest.raises(UserError, match=r'^give "torch_dtype" or "dtype" \(the same option\), not both$'):
        translate_legacy_dict({"dtype": "bfloat16", "torch_dtype": "float32"})


def test_torch_dtype_parses_under_both_names(tmp_path):
    for flag in ("--torch_dtype", "--dtype"):
        model, *_ = parse_args([*BASE, "--output_dir", str(tmp_path), flag, "bfloat16", "--token", "hf_t"])
        assert (model.torch_dtype, model.token) == ("bfloat16", "hf_t")
    with pytest.raises(UserError, match=r"^--torch_dtype float16: float16 weights trained without float32 copies"):
        parse_args([*BASE, "--output_dir", str(tmp_path), "--torch_dtype", "float16"])
    model, *_ = parse_args(["--model_name_or_path", "m", "--validation_file", "v.csv", "--do_eval",
                            "--output_dir", str(tmp_path / "eval"), "--torch_dtype", "float16"])  # fmt: skip
    assert model.torch_dtype == "float16"  # evaluation alone: any dtype


def test_training_dtypes_that_cannot_work_are_refused(caplog):
    import torch

    from domainlm.modeling import check_training_dtype

    def args(**kw):
        return SimpleNamespace(**{"do_train": True, "deepspeed": None, "fp16": False, **kw})

    with pytest.raises(UserError, match=r"^--torch_dtype bfloat16 with --fp16: .* pass --bf16 instead of --fp16$"):
        check_training_dtype(torch.bfloat16, args(fp16=True), "--torch_dtype bfloat16")
    with pytest.raises(UserError, match=r"^--torch_dtype auto \(m holds torch.float16\): float16 weights"):
        check_training_dtype(torch.float16, args(), "--torch_dtype auto (m holds torch.float16)")
    check_training_dtype(torch.float16, args(deepspeed="ds_config.json"), "x")  # DeepSpeed keeps float32 copies
    check_training_dtype(torch.float16, args(do_train=False), "x")
    with caplog.at_level("WARNING", logger="domainlm.modeling"):
        check_training_dtype(torch.bfloat16, args(), "--torch_dtype bfloat16")
    assert "--torch_dtype bfloat16: pure bfloat16 training" in caplog.text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "wandb",
            "--report_to wandb: its package is not installed; install it (pip install wandb), or use "
            "tensorboard or none",
        ),
        (
            "comet_ml",
            "--report_to comet_ml: its package is not installed; install it (pip install comet-ml), or use "
            "tensorboard or none",
        ),
        (
            "tensorbord",
            "--report_to tensorbord: no such integration; use tensorboard (the default), none, all, or one "
            "of azure_ml, clearml, codecarbon, comet_ml",
        ),
    ],
)
def test_report_to_an_integration_that_cannot_run_is_one_line_before_any_work(tmp_path, monkeypatch, value, message):
    """The Trainer would raise when it is built, with a traceback, after the model and the data loaded."""
    import transformers.integrations

    monkeypatch.setattr(transformers.integrations, "get_available_reporting_integrations", lambda: ["tensorboard"])
    with pytest.raises(UserError) as err:
        parse_args([*BASE, "--output_dir", str(tmp_path), "--report_to", "tensorboard", value])
    assert str(err.value).startswith(message)
    monkeypatch.setattr(
        transformers.integrations, "get_available_reporting_integrations", lambda: ["tensorboard", "wandb"]
    )
    *_, training = parse_args([*BASE, "--output_dir", str(tmp_path), "--report_to", "tensorboard", "wandb"])
    assert training.report_to == ["tensorboard", "wandb"]  # several values, as in 4.x


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps 0: must be at least 1"),
        (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size 0: must be at least 1"),
        (["--learning_rate", "-0.1"], "--learning_rate -0.1: must be 0 or more"),
        (["--seed", "-1"], "--seed -1: must be 0 or more"),
        (["--seed", "4294967296"], "--seed 4294967296: must be below 2**32 (4294967296)"),
        (["--logging_steps", "0"], "logging strategy IntervalStrategy.STEPS requires non-zero --logging_steps"),
        (
            ["--load_best_model_at_end"],
            '--load_best_model_at_end requires the save and eval strategy to match, except when --save_strategy="best", '
            "but found - Evaluation strategy: IntervalStrategy.NO - Save strategy: SaveStrategy.STEPS",
        ),
    ],
)
def test_values_the_trainer_would_fail_on_later_are_one_line(tmp_path, flags, message):
    """Each of these was a traceback: a division by zero or a DataLoader's error once the model and the data
    had loaded, or transformers' own check of several lines."""
    with pytest.raises(UserError) as err:
        parse_args([*BASE, "--output_dir", str(tmp_path), *flags])
    assert str(err.value) == message


def test_values_a_json_file_gives_unchecked_are_one_line(tmp_path):
    """parse_dict checks neither choices nor types: a bad value would be a traceback later."""
    options = {"model_type": "gpt2", "tokenizer_name": "tok", "train_file": "t.csv", "do_train": True,
               "output_dir": str(tmp_path / "out")}  # fmt: skip
    path = tmp_path / "options.json"
    for extra, message in (
        ({"dtype": "bf16"}, "--torch_dtype bf16: use one of auto, bfloat16, float16, float32"),
        ({"learning_rate": "5e-5"}, "--learning_rate '5e-5': must be a number"),
    ):
        path.write_text(json.dumps({**options, **extra}))
        with pytest.raises(UserError) as err:
            parse_args([str(path)])
        assert str(err.value) == message


def test_report_to_none_or_all_among_others_is_one_line(tmp_path):
    with pytest.raises(UserError) as err:
        parse_args([*BASE, "--output_dir", str(tmp_path), "--report_to", "tensorboard", "none"])
    assert str(err.value) == "--report_to tensorboard none: none stands alone; give it alone, or name the integrations"
