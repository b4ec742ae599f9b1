"""Token and label layouts, with a word-level tokenizer whose ids are known in advance."""

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
    with pytest.raises(UserError, match="row 1 is 6 tokens, over --block_size 5"):
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
