import json
import os

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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--train_file", "t.csv", "--do_train", "--output_dir", "o"], "give --model_name_or_path"),
        ([*BASE, "--output_dir", "o", "--no_such_flag", "1"], "unknown flags ['--no_such_flag', '1']"),
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
