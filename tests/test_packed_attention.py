"""Per-record attention for packed rows (domainlm/packed_attention.py): exact against the mask path.

A tiny 2-layer GPT-2 without dropout. Row 0 packs two records (5 and 7 tokens); row 1 holds one record
of 3 tokens and, after collation, a pad tail of 9 with its own position ids. The mask path is
transformers' sdpa with the 4-D block-diagonal mask; the per-record path must give the same logits,
loss and gradients while calling SDPA once per segment with ``is_causal`` and no mask.
"""

import json

import pytest
import torch
from conftest import record_rows, write_text_csv
from packed_rows import RECORDS, assert_same_loss_and_grads, loss_and_grads, packed_features, tiny_gpt2

import domainlm.packed_attention as pa
from domainlm.data import CausalLMCollator


@pytest.fixture(autouse=True)
def registered():
    pa.register()


def packed_batch():
    return CausalLMCollator(pad_token_id=1)(packed_features())


@pytest.fixture
def sdpa_calls(monkeypatch):
    """Every SDPA call, from either path: (query length, key length, mask given, is_causal)."""
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kwargs):
        calls.append((q.shape[-2], k.shape[-2], attn_mask is not None, is_causal))
        return real(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    return calls


def switch(model, name):
    model.set_attn_implementation(name)
    assert model.config._attn_implementation == name


def test_packed_rows_equal_records_alone_and_the_mask_path(sdpa_calls):
    model = tiny_gpt2()
    batch = packed_batch()
    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
    with torch.no_grad():
        mask_path = model(**inputs).logits
        assert sdpa_calls == [(12, 12, True, False)] * 2  # one masked 12 x 12 square per row and layer
        sdpa_calls.clear()
        assert pa.use_packed_attention(model)
        packed = model(**inputs).logits
        # one causal call per segment, no mask: 5 + 7 in row 0; 3 and the pad tail of 9 in row 1; per layer
        assert sdpa_calls == [(n, n, False, True) for n in (5, 7, 3, 9)] * 2
        alone = [model(input_ids=torch.tensor([r]), use_cache=False).logits[0] for r in RECORDS]
        mixed = model(input_ids=batch["input_ids"][:1], use_cache=False).logits[0]  # positions 0..11: records mix
    assert (packed - mask_path).abs().max() <= 1e-5  # pad tail included
    assert (packed[0, :5] - alone[0]).abs().max() <= 1e-5
    assert (packed[0, 5:12] - alone[1]).abs().max() <= 1e-5
    assert (packed[1, :3] - alone[2]).abs().max() <= 1e-5
    assert (mixed[5:12] - alone[1]).abs().max() > 1e-3  # the comparison can tell mixing apart


def test_rows_end_to_end_give_the_same_loss_and_gradients():
    """``flatten``: the batch's rows as one row without pad tails; the same loss and gradients as the padded rows."""
    runs = []
    for flatten in (False, True):
        model = tiny_gpt2()
        assert pa.use_packed_attention(model)
        batch = CausalLMCollator(pad_token_id=1, flatten=flatten)(packed_features())
        assert batch["input_ids"].shape == ((1, 15) if flatten else (2, 12))
        runs.append(loss_and_grads(model, batch))
    assert_same_loss_and_grads(*runs)  # padded rows, then rows end to end


def mask_config(name):
    from transformers import GPT2Config

    config = GPT2Config(n_layer=1, n_embd=8, n_head=2, n_positions=64, vocab_size=50)
    config._attn_implementation = name
    return config


def test_segments_are_the_mask_transformers_builds():
    from transformers.masking_utils import create_causal_mask

    positions = packed_batch()["position_ids"]
    embeds = torch.zeros(2, 12, 8)
    args = {"inputs_embeds": embeds, "attention_mask": None, "past_key_values": None, "position_ids": positions}
    segments = create_causal_mask(config=mask_config(pa.NAME), **args)
    assert segments == pa.PackedSegments(lengths=(5, 7, 3, 9), rows=2, row_length=12)
    dense = create_causal_mask(config=mask_config("sdpa"), **args)
    assert dense.shape == (2, 1, 12, 12) and torch.equal(segments.dense_mask(), dense)
    with pytest.raises(ValueError, match=r"^segment lengths \(5, 6\) do not tile 1 rows of 12$"):
        pa.PackedSegments(lengths=(5, 6), rows=1, row_length=12)


def test_other_masks_are_transformers_own():
    """Not packed, padded, sliding-window or bidirectional: exactly what sdpa's mask function returns."""
    from transformers.masking_utils import (
        create_bidirectional_mask,
        create_causal_mask,
        create_sliding_window_causal_mask,
    )

    embeds = torch.zeros(2, 12, 8)
    packed_positions = packed_batch()["position_ids"]
    padding = torch.ones(2, 12, dtype=torch.long)
    padding[1, 3:] = 0
    cases = [
        (create_causal_mask, {"attention_mask": None, "position_ids": torch.arange(12)[None].repeat(2, 1)}),
        (create_causal_mask, {"attention_mask": padding, "position_ids": None}),
        (create_causal_mask, {"attention_mask": padding, "position_ids": packed_positions}),
        (create_sliding_window_causal_mask, {"attention_mask": None, "position_ids": packed_positions}),
        (create_bidirectional_mask, {"attention_mask": padding}),
    ]
    for make, kwargs in cases:
        results = []
        for name in ("sdpa", pa.NAME):
            config = mask_config(name)
            config.sliding_window = 4
            if make is not create_bidirectional_mask:
                kwargs = {**kwargs, "past_key_values": None}
            results.append(make(config=config, inputs_embeds=embeds, **kwargs))
        sdpa, ours = results
        assert not isinstance(ours, pa.PackedSegments), make.__name__
        assert (sdpa is None and ours is None) or torch.equal(sdpa, ours), make.__name__


@pytest.mark.parametrize("checkpointing", [False, True])
def test_gradients_equal_the_mask_path(checkpointing, sdpa_calls):
    model = tiny_gpt2().train()
    if checkpointing:
        model.gradient_checkpointing_enable()
    batch = packed_batch()
    grads, losses = [], []
    for name in ("sdpa", pa.NAME):
        switch(model, name)
        model.zero_grad(set_to_none=True)
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        # forward (and its recomputation under checkpointing): per segment without a mask, or one mask per row
        per_layer = [(n, n, False, True) for n in (5, 7, 3, 9)] if name == pa.NAME else [(12, 12, True, False)]
        assert sdpa_calls == per_layer * 2 * (2 if checkpointing else 1), name
        sdpa_calls.clear()
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for n in grads[0]:
        assert (grads[0][n] - grads[1][n]).abs().max() <= 1e-5, n
    assert any(g.abs().sum() > 0 for n, g in grads[1].items() if "attn" in n)  # gradients flowed through attention


def test_dropout_reaches_every_segment(monkeypatch):
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(
        torch.nn.functional,
        "scaled_dot_product_attention",
        lambda *a, dropout_p=0.0, **k: seen.append(dropout_p) or real(*a, dropout_p=dropout_p, **k),
    )
    model = tiny_gpt2(pa.NAME, attn_pdrop=0.25)
    batch = packed_batch()
    model.train()(**batch, use_cache=False).loss.backward()
    assert seen == [0.25] * 8  # 4 segments x 2 layers
    seen.clear()
    with torch.no_grad():
        model.eval()(**batch, use_cache=False)
    assert seen == [0.0] * 8


def test_padded_batches_take_plain_sdpa(sdpa_calls):
    model = tiny_gpt2()
    batch = CausalLMCollator(pad_token_id=1)([{"input_ids": r} for r in RECORDS])  # records mode: attention_mask
    with torch.no_grad():
        plain = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        expected = list(sdpa_calls)
        sdpa_calls.clear()
        pa.use_packed_attention(model)
        ours = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.equal(plain, ours)
    assert sdpa_calls == expected == [(7, 7, True, False)] * 2  # the padded 7 x 7 mask, as sdpa does it


def test_cache_takes_plain_sdpa():
    """With a cache transformers does not detect packing (records then mix): the same under both names."""
    model = tiny_gpt2()
    batch = packed_batch()
    with torch.no_grad():
        plain = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=True).logits
        pa.use_packed_attention(model)
        ours = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=True).logits
    assert torch.equal(plain, ours)


def test_generation_same_greedy_text(tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    used = []
    real = pa.segmented_attention
    monkeypatch.setattr(pa, "segmented_attention", lambda *a, **k: used.append(a[3]) or real(*a, **k))
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts = tok(
        ["Chef<|SEP|>knives<|SEP|>", "Line cook<|SEP|>grill, prep, haccp<|SEP|>"], return_tensors="pt", padding=True
    )
    texts = []
    for name in ("sdpa", pa.NAME):
        switch(model, name)
        out = model.generate(
            **prompts, max_new_tokens=12, do_sample=False, use_cache=True, pad_token_id=tok.pad_token_id
        )
        texts.append(tok.batch_decode(out[:, prompts["input_ids"].shape[1] :]))
    assert texts[0] == texts[1] and all(texts[0])
    assert used == []  # left padding and a cache: never the per-record path


def test_unsupported_arguments_use_the_dense_mask():
    """A ``position_bias`` (not GPT-2's) turns the segments back into the mask and runs plain sdpa."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    segments = pa.PackedSegments((5, 7, 3, 9), 2, 12)
    module = torch.nn.Module()
    module.is_causal = True
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 12, 4) for _ in range(3))
    bias = torch.randn(1, 2, 12, 12)
    ours, _ = pa.packed_sdpa_attention_forward(module, q, k, v, segments, position_bias=bias)
    plain, _ = sdpa_attention_forward(module, q, k, v, segments.dense_mask(), position_bias=bias)
    assert torch.equal(ours, plain)
    segmented, _ = pa.packed_sdpa_attention_forward(module, q, k, v, segments)
    assert not torch.allclose(segmented, ours, atol=1e-3)  # the bias mattered, so the fallback did run


def test_only_gpt2_on_sdpa_switches(tmp_path):
    from transformers import AutoModelForCausalLM, GPTNeoConfig

    eager = tiny_gpt2("eager")
    assert not pa.use_packed_attention(eager) and eager.config._attn_implementation == "eager"
    neo = AutoModelForCausalLM.from_config(
        GPTNeoConfig(num_layers=2, hidden_size=32, num_heads=2, max_position_embeddings=64, vocab_size=50,
                     attention_types=[[["global", "local"], 1]], window_size=8),
        attn_implementation="eager",
    )  # fmt: skip
    assert not pa.use_packed_attention(neo) and neo.config._attn_implementation == "eager"
    model = tiny_gpt2()
    assert pa.use_packed_attention(model) and model.config._attn_implementation == pa.NAME
    model.save_pretrained(tmp_path)
    saved = (tmp_path / "config.json").read_text()
    assert pa.NAME not in saved and "attn_implementation" not in saved
    assert AutoModelForCausalLM.from_pretrained(tmp_path).config._attn_implementation == "sdpa"
    pa.use_plain_sdpa(model)
    assert model.config._attn_implementation == "sdpa"


def test_training_entry_point_uses_it(tmp_path, tiny_model_dir, monkeypatch, caplog):
    """run_clm's main with --sequence_mode packed: per-record attention in the steps, a plain folder saved."""
    import logging

    from transformers import pipeline

    from domainlm.template import format_prompt
    from domainlm.train import main

    segment_counts = []
    real = pa.segmented_attention
    monkeypatch.setattr(pa, "segmented_attention", lambda *a, **k: segment_counts.append(len(a[3])) or real(*a, **k))
    write_text_csv(tmp_path / "train.csv", record_rows(16, words=8))
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="domainlm"):
        main(
            ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(tmp_path / "train.csv"), "--do_train",
             "--sequence_mode", "packed", "--max_steps", "2", "--per_device_train_batch_size", "2",
             "--save_strategy", "steps", "--save_steps", "2", "--output_dir", str(out), "--report_to", "none",
             "--disable_tqdm", "true"]
        )  # fmt: skip
    assert any(f"attention {pa.NAME}" in r.getMessage() for r in caplog.records)
    # 2 steps x 2 layers (forward; backward reuses the saved segments), rows holding several records
    assert len(segment_counts) == 4 and min(segment_counts) > 2
    for folder in (out, out / "checkpoint-2"):
        config = json.loads((folder / "config.json").read_text())
        assert pa.NAME not in json.dumps(config), folder
    generator = pipeline("text-generation", model=str(out))
    assert generator.model.config._attn_implementation == "sdpa"
    text = generator(format_prompt("Chef", ["haccp"]), max_new_tokens=5)[0]["generated_text"]
    assert text.startswith("Chef<|SEP|>haccp<|SEP|>")


def test_busy_cpu_hint(monkeypatch):
    """Spin-waiting OpenMP threads on an oversubscribed CPU: one warning naming the fix, else nothing."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("os.getloadavg", lambda: (5.2, 4.0, 3.0))
    assert "OMP_WAIT_POLICY=PASSIVE" in pa.busy_cpu_hint()
    monkeypatch.setattr("os.getloadavg", lambda: (1.5, 1.0, 1.0))
    assert pa.busy_cpu_hint() is None
    monkeypatch.setattr("os.getloadavg", lambda: (5.2, 4.0, 3.0))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert pa.busy_cpu_hint() is None
