import re

import pytest
from conftest import forbid
from transformers import AutoTokenizer

from domainlm.template import EOS_TOKEN, PAD_TOKEN, SEP_TOKEN
from domainlm.tokenizer import ensure_special_tokens, train_bpe_tokenizer

TEXTS = ["Data Scientist<|SEP|>python, sql<|SEP|>We need a café person.\nApply now!"] * 30 + ["plain text"] * 10


def test_trained_tokenizer_has_distinct_eos_pad_and_a_visible_sep(tmp_path):
    tok = train_bpe_tokenizer(TEXTS, vocab_size=300)
    assert (tok.eos_token, tok.pad_token) == (EOS_TOKEN, PAD_TOKEN)
    assert (tok.eos_token_id, tok.pad_token_id) == (0, 1)
    sep = tok.convert_tokens_to_ids(SEP_TOKEN)
    ids = tok.encode(TEXTS[0])
    assert ids.count(sep) == 2
    # what pipeline('text-generation') does: decode without special tokens; <|SEP|> must survive
    assert tok.decode([*ids, tok.eos_token_id, tok.pad_token_id], skip_special_tokens=True) == TEXTS[0]
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.encode(TEXTS[0]) == ids and again.pad_token_id == 1


def test_ensure_special_tokens_adds_what_a_gpt2_style_tokenizer_lacks():
    # make it look like stock GPT-2: pad = eos, no <|SEP|> token
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"<|endoftext|>": 0, "hello": 1, "<unk>": 2}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN)
    added = ensure_special_tokens(tok)
    assert added == [PAD_TOKEN, SEP_TOKEN]
    assert tok.pad_token_id == 3 and tok.eos_token_id == 0
    assert tok.convert_tokens_to_ids(SEP_TOKEN) == 4
    assert ensure_special_tokens(tok) == []
    assert tok.decode(tok.encode("hello <|SEP|> hello"), skip_special_tokens=True).count(SEP_TOKEN) == 1


def run_create_tokenizer(argv, capsys):
    """create_tokenizer.py as a user runs it (through ``run_cli``): exit status, stdout, stderr."""
    from create_tokenizer import main
    from domainlm.errors import run_cli

    status = run_cli(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def no_training(monkeypatch):
    """Reading or training is work: a check that must come first fails the test if either starts."""
    import domainlm.data
    import domainlm.tokenizer

    forbid(monkeypatch, (domainlm.data, "load_text_dataset"), (domainlm.tokenizer, "train_bpe_tokenizer"))


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--output_dir", "{tmp}/afile"], r"--output_dir {tmp}/afile is a file; give a folder"),
        (["--output_dir", "{tmp}/afile/tok"], r"--output_dir {tmp}/afile/tok: {tmp}/afile is a file, not a folder"),
        (["--vocab_size", "-5"], r"--vocab_size -5: must be at least 258 \(the 256 byte symbols, "),
        (["--vocab_size", "0"], r"--vocab_size 0: must be at least 258 "),
        (["--vocab_size", "257"], r"--vocab_size 257: must be at least 258 "),
        (["--min_frequency", "-1"], r"--min_frequency -1: must be 0 or more"),
        (["--model_max_length", "0"], r"--model_max_length 0: must be at least 1"),
        (["--train_file", "{tmp}"], r"--train_file {tmp} is a folder; give the csv/json/jsonl/txt files in it"),
        (["--train_file", "{tmp}/jobs.pkl"], r"--train_file {tmp}/jobs\.pkl: use a \.csv, \.json, \.jsonl, \.txt file"),
        (["--train_file", "{tmp}/t.parquet"], r"--train_file {tmp}/t\.parquet: use a \.csv, \.json, \.jsonl, \.txt"),
    ],
)
def test_create_tokenizer_refuses_bad_flags_before_any_work(flags, error, corpus, tmp_path, capsys, no_training):
    import pandas as pd

    (tmp_path / "afile").write_text("mine\n")
    pd.DataFrame({"text": TEXTS}).to_pickle(tmp_path / "jobs.pkl")  # tables the training loader does not read
    pd.DataFrame({"text": TEXTS}).to_parquet(tmp_path / "t.parquet")
    flags = [f.format(tmp=tmp_path) for f in flags]
    argv = ["--train_file", corpus, "--output_dir", tmp_path / "tok", "--vocab_size", "300", *flags]
    status, out, err = run_create_tokenizer(argv, capsys)
    assert status == 2 and out == ""
    assert re.fullmatch(r"error: " + error.format(tmp=re.escape(str(tmp_path))) + r".*\n", err), err
    assert (tmp_path / "afile").read_text() == "mine\n" and not (tmp_path / "tok").exists()


def test_create_tokenizer_where_a_folder_holds_a_file_name_writes_nothing(corpus, tmp_path, capsys):
    out = tmp_path / "tok"
    (out / "tokenizer.json").mkdir(parents=True)  # where save_pretrained writes a file
    argv = ["--train_file", corpus, "--output_dir", out, "--vocab_size", "300"]
    status, stdout, err = run_create_tokenizer(argv, capsys)
    assert (status, stdout) == (2, "")
    assert err == f"error: {out}/tokenizer.json is a folder; move it away, or choose another --output_dir\n"
    assert [p.name for p in out.iterdir()] == ["tokenizer.json"]  # no half-moved files, no staging folder


def test_create_tokenizer_says_when_the_corpus_gives_fewer_tokens(corpus, tmp_path, capsys):
    status, out, err = run_create_tokenizer(["--train_file", corpus, "--output_dir", tmp_path / "big",
                                             "--vocab_size", "10000000"], capsys)  # fmt: skip
    assert (status, err) == (0, "")  # the summary line alone: no progress bars of the datasets library
    learned = len(AutoTokenizer.from_pretrained(tmp_path / "big")) - 1  # <|SEP|> comes on top
    assert learned < 400
    assert f"(the corpus gave only {learned:,} of the 10,000,000 requested by --vocab_size; add text or lower " in out
    # the smallest vocabulary: no merges at all, every byte still encodes
    status, out, _ = run_create_tokenizer(["--train_file", corpus, "--output_dir", tmp_path / "small",
                                           "--vocab_size", "258"], capsys)  # fmt: skip
    assert status == 0 and out.startswith("tokenizer: 259 tokens, ") and "corpus gave only" not in out
    small = AutoTokenizer.from_pretrained(tmp_path / "small")
    assert small.decode(small.encode(TEXTS[0])) == TEXTS[0]


def special_sep_tokenizer(folder, how):
    """A tokenizer folder in which <|SEP|> is a special token: skip_special_tokens decoding drops it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=[EOS_TOKEN, PAD_TOKEN], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    backend.train_from_iterator(TEXTS, trainer=trainer)
    tok = GPT2TokenizerFast(tokenizer_object=backend, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN)
    if how == "add_tokens":
        tok.add_tokens([SEP_TOKEN], special_tokens=True)
    else:
        tok.add_special_tokens({"additional_special_tokens": [SEP_TOKEN]})
    tok.save_pretrained(folder)
    again = AutoTokenizer.from_pretrained(folder)
    assert again.decode(again.encode(TEXTS[0]), skip_special_tokens=True).count(SEP_TOKEN) == 0  # the problem
    return folder


@pytest.mark.parametrize("how", ["add_tokens", "additional_special_tokens"])
def test_a_tokenizer_whose_sep_is_special_is_refused_in_one_line(how, tmp_path, capsys, monkeypatch):
    # decoded with skip_special_tokens (pipeline output, generate.py), the separators would vanish and
    # title, keywords and body could not be told apart: run_clm.py refuses such a --tokenizer_name first
    import domainlm.data
    from domainlm.errors import run_cli
    from domainlm.train import main

    folder = special_sep_tokenizer(tmp_path / "tok", how)
    forbid(monkeypatch, (domainlm.data, "load_splits"))
    (tmp_path / "train.csv").write_text("text\n" + "\n".join(f'"{t}"' for t in TEXTS) + "\n", encoding="utf-8")
    argv = ["--model_type", "gpt2", "--config_overrides", "n_layer=1,n_embd=16,n_head=2,n_positions=64",
            "--tokenizer_name", str(folder), "--train_file", str(tmp_path / "train.csv"), "--do_train",
            "--output_dir", str(tmp_path / "out"), "--report_to", "none"]  # fmt: skip
    status = run_cli(main, argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert status == 2 and len(lines) == 1, err
    assert lines[0] == (
        f"error: --tokenizer_name {folder}: {SEP_TOKEN} is a special token of this tokenizer, so decoding that skips "
        "special tokens (pipeline output, generate.py) drops it and title, keywords and body cannot be told apart; "
        f"make the tokenizer with create_tokenizer.py, which adds {SEP_TOKEN} as an ordinary token"
    )
    assert "Traceback" not in err and not (tmp_path / "out" / "model.safetensors").exists()


def test_create_tokenizer_learns_from_a_dataset_as_from_its_files(corpus, tmp_path, capsys):
    """--dataset_name (here a save_to_disk folder; run_clm.py reads it the same way) gives the same tokenizer
    as the same rows in a file; without either source, or with both, one line."""
    import json

    from datasets import Dataset, DatasetDict

    rows = [line for line in corpus.read_text().splitlines() if line.strip()]
    DatasetDict({"train": Dataset.from_dict({"body": rows})}).save_to_disk(str(tmp_path / "saved"))
    capsys.readouterr()
    status, out, _ = run_create_tokenizer(["--dataset_name", tmp_path / "saved", "--text_column", "body",
                                           "--output_dir", tmp_path / "from_dataset", "--vocab_size", "300"], capsys)  # fmt: skip
    assert status == 0 and f"saved to {tmp_path / 'from_dataset'}" in out
    run_create_tokenizer(
        ["--train_file", corpus, "--output_dir", tmp_path / "from_file", "--vocab_size", "300"], capsys
    )
    vocab = {name: json.loads((tmp_path / name / "tokenizer.json").read_text())["model"]["vocab"]
             for name in ("from_dataset", "from_file")}  # fmt: skip
    assert vocab["from_dataset"] == vocab["from_file"] and len(vocab["from_file"]) > 258
    for argv in ([], ["--train_file", corpus, "--dataset_name", tmp_path / "saved"]):
        status, _, err = run_create_tokenizer([*argv, "--output_dir", tmp_path / "none"], capsys)
        assert (status, err) == (
            2,
            "error: give the text to learn from with --train_file FILE ... or with --dataset_name, one of them\n",
        )
    assert not (tmp_path / "none").exists()
