"""``--dataset_name``, as upstream run_clm: a folder written by save_to_disk or a folder of data files trains
on the same sequences as the equivalent ``--train_file``; bad input is one line."""

import logging
import math

import pytest
from conftest import record_rows

from domainlm.errors import UserError, run_cli
from domainlm.train import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# record rows, a CRLF inside one, an empty one (dropped) and one that pandas would read as missing ("NA")
ROWS = [r["text"] for r in record_rows(14, 12)]
ROWS[2] = ROWS[2].replace(" ", "\r\n", 1)
ROWS[5] = ""
ROWS[7] = "NA"
TRAIN, VALIDATION = ROWS[:10], ROWS[10:]


def common(tmp_path, out="out", *extra):
    return ["--output_dir", str(tmp_path / out), "--report_to", "none", "--save_strategy", "no",
            "--disable_tqdm", "true", "--seed", "3", *extra]  # fmt: skip


def write_csv(path, texts):
    from domainlm.tables import write_csv

    write_csv(path, [{"n": str(i), "posting": t} for i, t in enumerate(texts)], ["n", "posting"])
    return path


def save_to_disk(folder, splits):
    from datasets import Dataset, DatasetDict

    DatasetDict(
        {name: Dataset.from_dict({"n": list(range(len(texts))), "posting": texts}) for name, texts in splits.items()}
    ).save_to_disk(str(folder))
    return folder


def sequences_of(monkeypatch, argv):
    """Train with ``argv``; the source named in messages and the tokenised sequences of each split, train then
    validation, and the results."""
    import domainlm.data

    real, seen = domainlm.data.build_sequences, []

    def spy(ds, *args, source=None, **kwargs):
        out = real(ds, *args, source=source, **kwargs)
        seen.append((source, {"input_ids": list(out["input_ids"]), "labels": list(out["labels"])}))
        return out

    monkeypatch.setattr(domainlm.data, "build_sequences", spy)
    results = main(argv)
    monkeypatch.setattr(domainlm.data, "build_sequences", real)
    return seen, results


@pytest.mark.parametrize("form", ["save_to_disk", "csv folder", "save_to_disk, train split only"])
def test_a_dataset_folder_trains_on_the_same_sequences_as_the_csv_files(tmp_path, tiny_model_dir, monkeypatch, form):
    from safetensors.torch import load_file

    train_csv, validation_csv = (
        write_csv(tmp_path / "train.csv", TRAIN),
        write_csv(tmp_path / "validation.csv", VALIDATION),
    )
    held_out = form.endswith("train split only")
    if form == "csv folder":
        folder = tmp_path / "csvs"
        folder.mkdir()
        write_csv(folder / "train.csv", TRAIN), write_csv(folder / "validation.csv", VALIDATION)
    else:
        folder = save_to_disk(
            tmp_path / "saved", {"train": TRAIN} if held_out else {"train": TRAIN, "validation": VALIDATION}
        )
    files = ["--train_file", str(train_csv)] + ([] if held_out else ["--validation_file", str(validation_csv)])
    run = ["--model_name_or_path", str(tiny_model_dir), "--do_train", "--do_eval", "--text_column", "posting",
           "--sequence_mode", "records", "--max_steps", "2", "--per_device_train_batch_size", "4",
           "--learning_rate", "1e-2", "--validation_split_percentage", "30"]  # fmt: skip
    expected, from_files = sequences_of(monkeypatch, [*run, *files, *common(tmp_path, "files")])
    got, results = sequences_of(monkeypatch, [*run, "--dataset_name", str(folder), *common(tmp_path)])

    train, validation = f"{folder}, split train", f"{folder}, split {'train' if held_out else 'validation'}"
    assert [source for source, _ in got] == [train, validation]
    assert [source for source, _ in expected] == [str(train_csv), str(train_csv if held_out else validation_csv)]
    assert [sequences for _, sequences in got] == [sequences for _, sequences in expected]
    # 9 rows with text of 10 ("NA" is text); held out: 30% of them evaluate
    assert results["train_samples"] == (6 if held_out else 9) == len(got[0][1]["input_ids"])
    assert results["eval_samples"] == (3 if held_out else 4)
    assert math.isfinite(results["eval_loss"]) and results["eval_loss"] == pytest.approx(from_files["eval_loss"])
    card = (tmp_path / "out" / "README.md").read_text()
    assert "datasets:" not in card  # a local folder is no hub dataset
    assert f"| train | {train} | {results['train_samples']} |" in card
    assert f"| validation | {validation} | {results['eval_samples']} |" in card
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(tmp_path / "out" / "model.safetensors")
    assert any(not (before[k] == after[k]).all() for k in before)  # it trained


def test_evaluation_alone_reads_the_validation_split(tmp_path, tiny_model_dir, monkeypatch):
    from datasets import Dataset, DatasetDict

    folder = tmp_path / "saved"
    validation = Dataset.from_dict({"n": list(range(len(VALIDATION))), "posting": VALIDATION})
    train = Dataset.from_dict({"n": [0], "posting": [7]})  # not text: refused if it were read
    DatasetDict({"train": train, "validation": validation}).save_to_disk(str(folder))
    files = ["--validation_file", str(write_csv(tmp_path / "validation.csv", VALIDATION))]
    run = ["--model_name_or_path", str(tiny_model_dir), "--do_eval", "--text_column", "posting"]
    expected, from_file = sequences_of(monkeypatch, [*run, *files, *common(tmp_path, "files")])
    got, results = sequences_of(monkeypatch, [*run, "--dataset_name", str(folder), *common(tmp_path)])
    assert [source for source, _ in got] == [f"{folder}, split validation"]
    assert [sequences for _, sequences in got] == [sequences for _, sequences in expected]
    assert results["eval_samples"] == 4 and results["eval_loss"] == pytest.approx(from_file["eval_loss"])


def test_a_folder_of_text_files_reads_as_the_text_files_do(tmp_path):
    """Lines keep their line breaks (--keep_linebreaks), blank lines go, as for --train_file train.txt."""
    from types import SimpleNamespace

    from domainlm.args import DataArguments
    from domainlm.data import load_splits

    folder = tmp_path / "poems"
    folder.mkdir()
    (folder / "train.txt").write_text("The night train crossed the river.\n\n  \nLamps burned on the shore.\n")
    (folder / "validation.txt").write_text("Morning came slowly.\n")
    steps = SimpleNamespace(do_train=True, do_eval=True, seed=1)
    for keep in (True, False):
        got = load_splits(DataArguments(dataset_name=str(folder), keep_linebreaks=keep), steps)
        files = DataArguments(
            train_file=str(folder / "train.txt"), validation_file=str(folder / "validation.txt"), keep_linebreaks=keep
        )
        expected = load_splits(files, steps)
        assert got["train"]["text"] == expected["train"]["text"]
        assert got["validation"]["text"] == expected["validation"]["text"]
    assert got["train"]["text"] == ["The night train crossed the river.", "Lamps burned on the shore."]
    assert (
        expected["train"]["text"]
        != load_splits(DataArguments(train_file=str(folder / "train.txt")), steps)["train"]["text"]
    )


def test_a_row_over_the_block_is_named_by_its_split_and_position(tmp_path, tiny_model_dir, caplog):
    """A row over the block, as --train_file names the line of a file: the dataset, its split and the row."""
    folder = save_to_disk(tmp_path / "saved", {"train": ["", "Baker<|SEP|>bread<|SEP|>" + "Bake bread. " * 80]})
    with pytest.raises(UserError) as err:
        main(["--model_name_or_path", str(tiny_model_dir), "--dataset_name", str(folder), "--do_train",
              "--text_column", "posting", "--block_size", "32", "--overlong", "error", *common(tmp_path)])  # fmt: skip
    assert str(err.value).startswith(f"{folder}, split train: row 2 is ")
    assert str(err.value).endswith(" tokens, over --block_size 32 (1 such row); raise --block_size, filter the data "
                                   "(prepare_jobs.py --max_tokens), or pass --overlong drop")  # fmt: skip


def test_a_hub_name_offline_is_one_line_at_once(tmp_path, tiny_model_dir, monkeypatch, caplog):
    import time

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(UserError) as err:
        main(["--model_name_or_path", str(tiny_model_dir), "--dataset_name", "wikitext", "--dataset_config_name",
              "wikitext-2-raw-v1", "--do_train", *common(tmp_path)])  # fmt: skip
    assert str(err.value) == (
        "--dataset_name wikitext: not a local folder, and the dataset could not be loaded from the hub (Couldn't "
        "reach 'wikitext' on the Hub (OfflineModeIsEnabled)); pass a local folder of data files (train.csv, "
        "validation.csv, ...) or one written by save_to_disk, or --train_file"
    )
    assert time.monotonic() - started < 30 and not [r for r in caplog.records if "Retrying" in r.getMessage()]
    assert not (tmp_path / "out").exists()


def test_a_hub_name_with_the_hub_unreachable_asks_it_once(tmp_path, tiny_model_dir, monkeypatch, caplog):
    from huggingface_hub import constants

    from domainlm import hub
    from domainlm.distributed import free_port

    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    hub.hub_unreachable.cache_clear()
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(UserError) as err:
            main(["--model_name_or_path", str(tiny_model_dir), "--dataset_name", "someone/postings", "--do_train",
                  *common(tmp_path)])  # fmt: skip
    finally:
        hub.hub_unreachable.cache_clear()
    message = str(err.value)
    assert message.startswith(
        f"--dataset_name someone/postings: not a local folder, the hub cannot be reached ({url}: "
    )
    assert message.endswith(
        "and the dataset is not in the local cache; pass a local folder of data files (train.csv, validation.csv, "
        "...) or one written by save_to_disk, or --train_file"
    )
    assert "\n" not in message and not [r for r in caplog.records if "Retrying" in r.getMessage()]


def bad_input_cases(tmp_path):
    """(extra flags, the exact error) for each kind of bad input."""
    saved = save_to_disk(tmp_path / "saved", {"train": TRAIN})
    test_only = save_to_disk(tmp_path / "test_only", {"test": TRAIN})
    csv = write_csv(tmp_path / "train.csv", TRAIN)
    empty, malformed = tmp_path / "empty", tmp_path / "malformed"
    empty.mkdir(), malformed.mkdir()
    (malformed / "train.csv").write_text('text\n"a quote never closed\nrow two\n')
    return [
        (["--dataset_name", str(saved)],
         f"--dataset_name {saved}: split train has no column 'text' (--text_column); its columns: n, posting"),
        (["--dataset_name", str(saved), "--text_column", "n"],
         f"--dataset_name {saved}: column 'n' of split train is int64, not text; pass --text_column with a text column"),
        (["--dataset_name", str(test_only), "--text_column", "posting"],
         f"--dataset_name {test_only}: --do_train needs a train split, and it has test"),
        (["--dataset_name", str(test_only), "--text_column", "posting", "--do_eval"],
         f"--dataset_name {test_only}: --do_eval needs a validation split (or a train split to hold one out of), and "
         "it has test"),
        (["--dataset_name", str(saved), "--train_file", str(csv)],
         f"--dataset_name {saved} and --train_file {csv} exclude each other: give the data with --dataset_name (its "
         "train and validation splits) or with --train_file/--validation_file"),
        (["--dataset_name", str(csv)], f"--dataset_name {csv} is a file: pass it as --train_file {csv}"),
        (["--dataset_name", "./no/such/data"], "--dataset_name ./no/such/data: no such folder"),
        (["--dataset_name", str(saved), "--dataset_config_name", "wikitext-2-raw-v1"],
         f"--dataset_config_name wikitext-2-raw-v1: {saved} was written by save_to_disk and has no configurations; "
         "leave it out"),
        (["--dataset_config_name", "wikitext-2-raw-v1", "--train_file", str(csv)],
         "--dataset_config_name wikitext-2-raw-v1 needs --dataset_name"),
        (["--dataset_name", "wikitext", "--streaming"],
         "--streaming is not supported: run_clm.py tokenises and packs whole splits, so the dataset is downloaded "
         "and read whole; to train on part of it, pass --max_train_samples N (and --max_eval_samples N) instead"),
        (["--dataset_name", str(empty)],
         f"--dataset_name {empty}: the folder cannot be loaded as a dataset (The directory at {empty} doesn't "
         "contain any data files)"),
        (["--dataset_name", str(malformed)],
         f"--dataset_name {malformed}: the folder cannot be loaded as a dataset (Error tokenizing data. C error: EOF "
         "inside string starting at row 1)"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(12))
def test_bad_input_is_one_line(tmp_path, tiny_model_dir, capsys, case):
    flags, message = bad_input_cases(tmp_path)[case]
    capsys.readouterr()  # save_to_disk's progress bars
    steps = [] if "--do_eval" in flags else ["--do_train"]
    argv = ["--model_name_or_path", str(tiny_model_dir), *steps, *flags, *common(tmp_path)]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n"
    assert not (tmp_path / "out").exists()


def test_help_lists_the_dataset_flags(capsys):
    from domainlm.args import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    printed = " ".join(capsys.readouterr().out.split())
    for flag in ("--dataset_name DATASET_NAME", "--dataset_config_name DATASET_CONFIG_NAME", "--streaming"):
        assert flag in printed
    assert "a local folder of data files such as train.csv and validation.csv" in printed
    assert "Not supported: splits are tokenised and packed whole" in printed


def test_a_dataset_name_is_enough_to_train_and_evaluate(tmp_path):
    from domainlm.args import parse_args

    _, data_args, _, training_args = parse_args(
        ["--model_type", "gpt2", "--dataset_name", "wikitext", "--dataset_config_name", "wikitext-2-raw-v1",
         "--do_train", "--do_eval", "--output_dir", str(tmp_path / "out")]
    )  # fmt: skip
    assert (data_args.dataset_name, data_args.dataset_config_name) == ("wikitext", "wikitext-2-raw-v1")
    assert data_args.train_file is None and training_args.do_train and training_args.do_eval


def test_a_hub_dataset_gets_the_token_and_cache_folder(tmp_path, tiny_model_dir, monkeypatch):
    """run_clm.py's --token (a private or gated dataset) and --cache_dir reach datasets.load_dataset."""
    import datasets
    from datasets import Dataset, DatasetDict

    seen = []

    def load_dataset(path, name=None, **kw):
        seen.append((path, name, kw))
        return DatasetDict({"train": Dataset.from_dict({"text": TRAIN[:4]})})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    main(["--model_name_or_path", str(tiny_model_dir), "--dataset_name", "someone/private-postings",
          "--dataset_config_name", "en", "--token", "hf_t", "--cache_dir", str(tmp_path / "cache"), "--do_train",
          "--max_steps", "1", *common(tmp_path)])  # fmt: skip
    assert seen == [("someone/private-postings", "en", {"token": "hf_t", "cache_dir": str(tmp_path / "cache")})]
    card = (tmp_path / "out" / "README.md").read_text()
    assert "\ndatasets:\n- someone/private-postings\n" in card.split("\n---\n")[0]  # the hub links the dataset
