"""Token and label layouts, with a word-level tokenizer whose ids are known in advance."""

import json
import re

import pytest

from domainlm.data import (
    IGNORE_INDEX,
    CausalLMCollator,
    concat_and_chunk,
    resolve_sequence_mode,
    tokenize_records,
)
from domainlm.errors import UserError

WORDS = ["<|endoftext|>", "<|pad|>", "<unk>", "chef", "cook", "clean", "knives", "daily", "a", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|pad|>", unk_token="<unk>"
    )
    tok.add_tokens(["<|SEP|>"])  # id 13, an ordinary token as in domainlm.tokenizer
    return tok


def dataset(texts):
    from datasets import Dataset

    return Dataset.from_dict({"text": texts})


def test_record_tokens_end_with_eos(word_tokenizer):
    assert word_tokenizer.convert_tokens_to_ids("<|SEP|>") == 13
    ds = tokenize_records(dataset(["chef<|SEP|>knives<|SEP|>cook daily", "a b"]), word_tokenizer, block_size=16)
    assert ds["input_ids"] == [[3, 13, 6, 13, 4, 7, 0], [8, 9, 0]]


def test_collator_pads_and_ignores_pads_in_the_loss(word_tokenizer):
    batch = CausalLMCollator(pad_token_id=1)([{"input_ids": [3, 13, 6, 13, 4, 7, 0]}, {"input_ids": [8, 9, 0]}])
    assert batch["input_ids"].tolist() == [[3, 13, 6, 13, 4, 7, 0], [8, 9, 0, 1, 1, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0]]
    # the end-of-text (0) stays a label; pads are ignored
    assert batch["labels"].tolist() == [
        [3, 13, 6, 13, 4, 7, 0],
        [8, 9, 0, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],
    ]


def test_collator_pads_to_a_multiple_and_keeps_given_labels():
    batch = CausalLMCollator(pad_token_id=1, pad_to_multiple_of=4)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 1]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100]]


def test_overlong_records(word_tokenizer):
    texts = ["a b c d e", "a b", "c d e a"]  # 6, 3 and 5 tokens with end-of-text
    ds = dataset(texts)
    assert tokenize_records(ds, word_tokenizer, 5, "drop")["input_ids"] == [[8, 9, 0], [10, 11, 12, 8, 0]]
    assert tokenize_records(ds, word_tokenizer, 5, "truncate")["input_ids"] == [
        [8, 9, 10, 11, 12],
        [8, 9, 0],
        [10, 11, 12, 8, 0],
    ]
    with pytest.raises(UserError, match=r"^row 1 is 6 tokens, over --block_size 5 \(1 such row\); "):
        tokenize_records(ds, word_tokenizer, 5, "error")
    with pytest.raises(UserError, match="every row is longer"):
        tokenize_records(dataset(["a b c d e"]), word_tokenizer, 2, "drop")


def test_concat_and_chunk_exact_blocks(word_tokenizer):
    ds = concat_and_chunk(dataset(["a b c", "d e", "chef cook"]), word_tokenizer, block_size=4)
    # a b c <eos> | d e <eos> chef | (cook <eos> dropped: shorter than a block)
    assert ds["input_ids"] == [[8, 9, 10, 0], [11, 12, 0, 3]]


def test_concat_small_corpus_gives_one_short_block(word_tokenizer):
    ds = concat_and_chunk(dataset(["a b", "c"]), word_tokenizer, block_size=64)
    assert ds["input_ids"] == [[8, 9, 0, 10, 0]]


def test_sequence_mode_auto():
    assert resolve_sequence_mode("auto", ["t<|SEP|>k<|SEP|>b", "u<|SEP|><|SEP|>c"]) == "records"
    assert resolve_sequence_mode("auto", ["t<|SEP|>k<|SEP|>b", "plain prose"]) == "concat"
    assert resolve_sequence_mode("concat", ["t<|SEP|>k<|SEP|>b"]) == "concat"


# --- messages that name the file and the row, with real files and the tiny model's tokenizer -------------------

LONG = "Baker<|SEP|>bread, oven<|SEP|>" + "Bake bread daily and clean the oven. " * 12


def records_file(path, *rows):
    """A one-column CSV written by hand, so that the line of each row is known."""
    path.write_text("text\n" + "".join(f'"{r}"\n' for r in rows), encoding="utf-8")
    return path


def record_tokens(tokenizer_dir, text):
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(tokenizer_dir)(text, add_special_tokens=False)["input_ids"]) + 1


def test_an_overlong_row_is_named_by_its_file_and_line(tmp_path, tiny_model_dir):
    from domainlm.train import main

    train = records_file(tmp_path / "train.csv", *["Baker<|SEP|>bread<|SEP|>Bake."] * 4)
    # lines 2-3: a record across two lines; line 4: an empty row (skipped); line 5: too long
    val = records_file(tmp_path / "validation.csv", "Baker<|SEP|>bread<|SEP|>Bake.\nClean.", "", LONG)
    n = record_tokens(tiny_model_dir, LONG)
    assert n > 60
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(train),
              "--validation_file", str(val), "--do_train", "--do_eval", "--block_size", "60", "--overlong", "error",
              "--max_steps", "2", "--output_dir", str(out), "--report_to", "none"])  # fmt: skip
    assert str(err.value) == (
        f"{val}: the row at line 5 is {n} tokens, over --block_size 60 (1 such row); raise --block_size, filter the "
        "data (prepare_jobs.py --max_tokens), or pass --overlong drop"
    )
    assert not out.exists()


def test_dropped_and_all_overlong_rows_name_the_file(tmp_path, tiny_model_dir, caplog, monkeypatch):
    import logging
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from domainlm.args import DataArguments
    from domainlm.data import build_sequences, load_splits

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.model_max_length = 50  # LONG is over it too: transformers' own warning would come first
    train = records_file(tmp_path / "train.csv", "", LONG, "Baker<|SEP|>bread<|SEP|>Bake.")
    data_args = DataArguments(train_file=str(train), overwrite_cache=True)  # tokenise now, not from a cache
    raw = load_splits(data_args, SimpleNamespace(do_eval=False, seed=1))
    monkeypatch.setattr(logging.getLogger("transformers"), "propagate", True)  # its warnings reach caplog
    with caplog.at_level(logging.WARNING):
        kept = build_sequences(raw["train"], tokenizer, "records", 60, data_args, source=str(train))
    assert len(kept) == 1
    assert f"{train}: dropped 1 of 2 rows longer than 60 tokens (pass --overlong truncate to keep them cut)" in (
        caplog.messages
    )
    assert not [m for m in caplog.messages if "indexing errors" in m]  # only the message above speaks of it
    with pytest.raises(UserError) as err:
        build_sequences(raw["train"], tokenizer, "records", 3, data_args, source=str(train))
    assert str(err.value) == f"{train}: every row is longer than --block_size 3; raise it or shorten the rows"
    # a .json list has rows, not lines
    listed = tmp_path / "train.json"
    listed.write_text(json.dumps([{"text": "Baker<|SEP|>bread<|SEP|>Bake."}, {"text": ""}, {"text": LONG}]))
    raw = load_splits(DataArguments(train_file=str(listed)), SimpleNamespace(do_eval=False, seed=1))
    with pytest.raises(UserError, match=rf"^{re.escape(str(listed))}: row 3 is \d+ tokens, over --block_size 60 "):
        build_sequences(raw["train"], tokenizer, "records", 60, DataArguments(overlong="error"), source=str(listed))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"loss_on": "body"}, "--loss_on body needs record rows (--sequence_mode records/packed)"),
        ({"shuffle_keywords": True}, "--shuffle_keywords needs record rows (--sequence_mode records/packed)"),
        (
            {"loss_on": "body", "shuffle_keywords": True},
            "--loss_on body and --shuffle_keywords need record rows (--sequence_mode records/packed)",
        ),
    ],
)
def test_record_options_with_concat_name_the_flags_given(tmp_path, tiny_model_dir, flags, message):
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from domainlm.args import DataArguments
    from domainlm.data import build_sequences, load_splits

    train = records_file(tmp_path / "train.csv", "Baker<|SEP|>bread<|SEP|>Bake.")
    data_args = DataArguments(train_file=str(train), **flags)
    raw = load_splits(data_args, SimpleNamespace(do_eval=False, seed=1))
    with pytest.raises(UserError) as err:
        build_sequences(raw["train"], AutoTokenizer.from_pretrained(tiny_model_dir), "concat", 60, data_args)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("value", "said"),
    [(42, "a number (42)"), (["a", "b"], "a list"), ({"t": "x"}, "an object"), (True, "true/false (true)")],
)
def test_a_json_lines_value_that_is_not_text_is_one_line(tmp_path, tiny_model_dir, value, said):
    from domainlm.train import main

    path = tmp_path / "train.jsonl"
    rows = [json.dumps({"text": "Baker<|SEP|>bread<|SEP|>Bake."}), "", json.dumps({"text": value})]
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(path), "--do_train",
              "--output_dir", str(out), "--report_to", "none"])  # fmt: skip
    assert str(err.value) == f"{path}: line 3: column 'text' is {said}; it must be text, a JSON string such as \"...\""
    assert not out.exists()
