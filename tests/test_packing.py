"""Packing without mixing, body-only loss and keyword shuffling: exact layouts and logits."""

import pytest
import torch

from domainlm.data import IGNORE_INDEX, CausalLMCollator, RecordEncoder, pack_lengths, pack_records, tokenize_records
from domainlm.keyword_shuffle import KeywordShuffler, shuffle_keywords

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
    tok.add_tokens(["<|SEP|>"])  # id 13
    return tok


def dataset(texts):
    from datasets import Dataset

    return Dataset.from_dict({"text": texts})


def test_body_only_labels(word_tokenizer):
    ds = tokenize_records(dataset(["chef<|SEP|>knives, a<|SEP|>cook daily"]), word_tokenizer, 32, body_only=True)
    assert ds["input_ids"] == [[3, 13, 2, 8, 13, 4, 7, 0]]  # "knives," is unknown (2) to the word vocabulary
    # title, keywords and both separators carry no loss; the body and the end-of-text do
    assert ds["labels"] == [[-100, -100, -100, -100, -100, 4, 7, 0]]
    all_labels = tokenize_records(dataset(["chef<|SEP|>a<|SEP|>cook"]), word_tokenizer, 32)["labels"]
    assert all_labels == [[3, 13, 8, 13, 4, 0]]


def test_pack_lengths_best_fit_decreasing():
    assert pack_lengths([5, 3, 8, 2, 4], capacity=10) == [[2, 3], [0, 4], [1]]
    assert pack_lengths([10, 10], capacity=10) == [[0], [1]]
    with pytest.raises(ValueError, match=r"^sequence 0 has 11 tokens, over the capacity 10$"):
        pack_lengths([11], capacity=10)


def test_packed_rows_exact(word_tokenizer):
    ds = tokenize_records(dataset(["a b c", "d e", "chef cook clean knives"]), word_tokenizer, 16)
    packed = pack_records(ds, block_size=8)
    # lengths 4, 3, 5 (with end-of-text): [chef cook clean knives <eos>] + [d e <eos>], then [a b c <eos>]
    assert packed["input_ids"] == [[3, 4, 5, 6, 0, 11, 12, 0], [8, 9, 10, 0]]
    assert packed["position_ids"] == [[0, 1, 2, 3, 4, 0, 1, 2], [0, 1, 2, 3]]
    assert packed["labels"] == [[-100, 4, 5, 6, 0, -100, 12, 0], [-100, 9, 10, 0]]
    batch = CausalLMCollator(pad_token_id=1)([packed[0], packed[1]])
    assert "attention_mask" not in batch
    assert batch["input_ids"].tolist()[1] == [8, 9, 10, 0, 1, 1, 1, 1]
    assert batch["position_ids"].tolist()[1] == [0, 1, 2, 3, 0, 1, 2, 3]  # the pad tail is its own segment
    assert batch["labels"].tolist()[1] == [-100, 9, 10, 0, -100, -100, -100, -100]


def packed_by_hand(records, bins):
    """What ``pack_records`` must give, built row by row in Python (records: dicts of one tokenised row)."""
    rows = {"input_ids": [], "labels": [], "position_ids": []}
    if "text" in records[0]:
        rows["texts"] = []
    for members in bins:
        rows["input_ids"].append([t for i in members for t in records[i]["input_ids"]])
        rows["labels"].append([t for i in members for t in [IGNORE_INDEX, *records[i]["labels"][1:]]])
        rows["position_ids"].append([p for i in members for p in range(len(records[i]["input_ids"]))])
        if "texts" in rows:
            rows["texts"].append([records[i]["text"] for i in members])
    return rows


def test_pack_records_reads_the_columns_in_bulk(word_tokenizer, monkeypatch):
    """Reading each record through the dataset held ~80 bytes per token in Python lists (2.5 GB for 50 MB of
    text): the dataset is read a fixed number of times, however many records; the rows stay exact."""
    import random

    from datasets import Dataset

    rng = random.Random(0)
    vocab = WORDS[3:]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 9))) + f" {i % 7}" for i in range(300)]
    calls = []
    real_getitem = Dataset.__getitem__

    def counting_getitem(self, key):
        calls.append(key)
        return real_getitem(self, key)

    for n in (30, 300):
        ds = tokenize_records(dataset(texts[:n]), word_tokenizer, 16, keep_text=True)
        ds = ds.select([i for i in range(n) if i % 5])  # as tokenize_records' drop of overlong rows does
        records = [ds[i] for i in range(len(ds))]
        bins = pack_lengths([len(r["input_ids"]) for r in records], 16)
        calls.clear()
        monkeypatch.setattr(Dataset, "__getitem__", counting_getitem)
        packed = pack_records(ds, block_size=16)
        monkeypatch.setattr(Dataset, "__getitem__", real_getitem)
        assert len(calls) <= 3, (n, len(calls))
        assert packed.to_dict() == packed_by_hand(records, bins)
        assert packed.features["input_ids"] == ds.features["input_ids"]  # the tokenised rows' own int type
        assert packed.features["labels"] == ds.features["labels"]
        again, other = pack_records(ds, block_size=16), pack_records(ds, block_size=17)
        assert again._fingerprint == packed._fingerprint != other._fingerprint  # from the input's, not hashed
        without_text = pack_records(ds.remove_columns(["text"]), block_size=16)
        assert without_text.column_names == ["input_ids", "labels", "position_ids"]


def tiny_model(kind, attn):
    from transformers import AutoModelForCausalLM, GPT2Config, GPTNeoConfig

    torch.manual_seed(0)
    if kind == "gpt2":
        config = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=50)
    else:
        config = GPTNeoConfig(
            num_layers=2, hidden_size=32, num_heads=2, max_position_embeddings=64, vocab_size=50,
            attention_types=[[["global", "local"], 1]], window_size=8,
        )  # fmt: skip
    config._attn_implementation = attn
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize(("kind", "attn"), [("gpt2", "sdpa"), ("gpt2", "eager"), ("gpt_neo", "eager")])
def test_packed_logits_equal_each_record_alone(kind, attn):
    model = tiny_model(kind, attn)
    records = [[5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16], [20, 21, 22]]
    features = [
        {
            "input_ids": records[0] + records[1],
            "labels": records[0] + records[1],
            "position_ids": [*range(5), *range(7)],
        },
        {"input_ids": records[2], "labels": records[2], "position_ids": [0, 1, 2]},
    ]
    batch = CausalLMCollator(pad_token_id=0)(features)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        alone = [model(input_ids=torch.tensor([r]), use_cache=False).logits[0] for r in records]
        mixed = model(input_ids=batch["input_ids"][:1], use_cache=False).logits  # no position ids: plain causal
    torch.testing.assert_close(packed[0, :5], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed[0, 5:12], alone[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed[1, :3], alone[2], atol=1e-5, rtol=1e-5)
    # without per-record positions the second record sees the first: the test can tell the difference
    assert not torch.allclose(mixed[0, 5:12], alone[1], atol=1e-3)


def test_shuffle_is_deterministic_and_changes_with_the_epoch():
    row = "Chef<|SEP|>a, b, c, d, e, f<|SEP|>Body, with commas."
    first = shuffle_keywords(row, seed=1, epoch=0)
    assert first == shuffle_keywords(row, seed=1, epoch=0)
    assert [shuffle_keywords(row, seed=1, epoch=e).split("<|SEP|>")[1] for e in range(3)] == [
        "f, d, a, e, c, b",
        "b, f, e, a, d, c",
        "f, c, b, e, a, d",
    ]
    orders = {shuffle_keywords(row, seed=1, epoch=e) for e in range(6)}
    for text in orders:
        title, kws, body = text.split("<|SEP|>")
        assert (title, body) == ("Chef", "Body, with commas.")
        assert sorted(kws.split(", ")) == ["a", "b", "c", "d", "e", "f"]
    assert shuffle_keywords("plain text", 1, 0) == "plain text"


def test_shuffler_reencodes_records_and_packed_rows(word_tokenizer):
    encoder = RecordEncoder(word_tokenizer)
    text = "chef<|SEP|>a, b, c, d<|SEP|>cook"
    ids, labels = encoder.encode([text])
    shuffler = KeywordShuffler(encoder, block_size=64, seed=3)
    plain = shuffler([{"input_ids": ids[0], "labels": labels[0], "text": text}])
    assert plain == [{"input_ids": ids[0], "labels": labels[0]}]  # no epoch yet: unchanged, text dropped
    shuffler.epoch = 3
    expected_ids, _ = encoder.encode(["chef<|SEP|>d, a, b, c<|SEP|>cook"])  # seed 3, epoch 3
    assert expected_ids[0] != ids[0]
    assert shuffler([{"input_ids": ids[0], "labels": labels[0], "text": text}])[0]["input_ids"] == expected_ids[0]
    packed = shuffler([{"input_ids": ids[0] * 2, "labels": labels[0] * 2, "position_ids": [], "texts": [text, text]}])[
        0
    ]
    assert packed["input_ids"] == expected_ids[0] * 2
    n = len(expected_ids[0])
    assert packed["position_ids"] == [*range(n), *range(n)]
    assert packed["labels"][0] == IGNORE_INDEX and packed["labels"][n] == IGNORE_INDEX
    with shuffler.paused():
        assert shuffler([{"input_ids": [1], "labels": [1], "text": text}])[0]["input_ids"] == [1]
