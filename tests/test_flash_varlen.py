"""Packed rows on ``flash_attention_2``: one varlen call over the batch, records kept apart.

This machine has no GPU and no flash-attn, so the CPU tests run transformers' own flash path
(``flash_attention_forward`` and ``_flash_attention_forward``: which kernel, which arguments, the
reshapes) with two small stand-ins for flash-attn's kernels written with PyTorch's SDPA: ``dense``
(each row one causal sequence) and ``varlen`` (each ``cu_seqlens`` segment one causal sequence). The
``gpu`` test runs the real kernels.
"""

import importlib.util
import itertools

import pytest
import torch
from conftest import record_rows, write_text_csv
from packed_rows import RECORDS, assert_same_loss_and_grads, loss_and_grads, packed_features, tiny_gpt2

import domainlm.packed_attention as pa
from domainlm.data import CausalLMCollator, flash_varlen_kwargs
from domainlm.errors import UserError


class StandInKernels:
    """flash-attn's dense and varlen functions, in PyTorch; records the varlen calls' segment bounds."""

    def __init__(self):
        self.varlen_calls = []
        self.dense_calls = 0

    @staticmethod
    def _causal(q, k, v, scale, causal):  # (..., n, heads, dim) in flash-attn's layout
        out = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(-3, -2), k.transpose(-3, -2), v.transpose(-3, -2), is_causal=causal, scale=scale
        )
        return out.transpose(-3, -2)

    def dense(self, q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, **_):
        self.dense_calls += 1
        return self._causal(q, k, v, softmax_scale, causal)

    def varlen(self, q, k, v, cu_seqlens_q, cu_seqlens_k, dropout_p=0.0, softmax_scale=None, causal=False, **_):
        bounds = cu_seqlens_q.tolist()
        assert bounds == cu_seqlens_k.tolist() and bounds[-1] == q.shape[0]
        self.varlen_calls.append(bounds)
        parts = [self._causal(q[a:b], k[a:b], v[a:b], softmax_scale, causal) for a, b in itertools.pairwise(bounds)]
        return torch.cat(parts)

    @staticmethod
    def process(**kwargs):
        return {"causal": kwargs["is_causal"], "softmax_scale": kwargs["softmax_scale"], "dropout_p": kwargs["dropout"]}

    def lazy_import(self, implementation, *args, **kwargs):
        return (self.dense, self.varlen, None, None, None), (self.process, dict)


@pytest.fixture
def kernels(monkeypatch):
    """transformers' flash_attention_2 path on this CPU, through the stand-in kernels."""
    import transformers.integrations.flash_attention as integration
    import transformers.modeling_flash_attention_utils as utils

    stand_in = StandInKernels()
    monkeypatch.setattr(utils, "lazy_import_flash_attention", stand_in.lazy_import)
    monkeypatch.setattr(integration, "get_target_dtype", lambda query, module: None)  # keep float32
    return stand_in


def on_flash(model):
    """The model's config says flash_attention_2, as a GPU machine with flash-attn would load it."""
    model.config._attn_implementation = "flash_attention_2"
    return model


def test_varlen_arguments_cut_the_rows_end_to_end():
    batch = CausalLMCollator(pad_token_id=1, flash_varlen=True)(packed_features())
    # row 0: records of 5 and 7; row 1 from token 12: a record of 3, then the pad tail of 9
    assert batch["cu_seq_lens_q"].tolist() == batch["cu_seq_lens_k"].tolist() == [0, 5, 12, 15, 24]
    assert batch["cu_seq_lens_q"].dtype == torch.int32
    assert batch["max_length_q"] == batch["max_length_k"] == 9
    assert batch["labels"][1, 0] == -100  # a row's first token never learns from the row before
    plain = CausalLMCollator(pad_token_id=1)(packed_features())
    assert "cu_seq_lens_q" not in plain
    # rows end to end, as training collates them for per-record attention: no pad tail at all
    flat = CausalLMCollator(pad_token_id=1, flash_varlen=True, flatten=True)(packed_features())
    assert flat["input_ids"].tolist() == [RECORDS[0] + RECORDS[1] + RECORDS[2]]
    assert flat["position_ids"].tolist() == [[*range(5), *range(7), *range(3)]]
    assert flat["labels"].tolist() == [[-100, *RECORDS[0][1:], -100, *RECORDS[1][1:], -100, *RECORDS[2][1:]]]
    assert flat["cu_seq_lens_q"].tolist() == [0, 5, 12, 15] and flat["max_length_q"] == 7
    one_row = flash_varlen_kwargs(torch.tensor([[0, 1, 2, 3]]))
    assert one_row["cu_seq_lens_q"].tolist() == [0, 4] and one_row["max_length_q"] == 4


def test_flash_path_keeps_packed_records_apart(kernels):
    model = tiny_gpt2()
    with torch.no_grad():
        alone = [model(input_ids=torch.tensor([r]), use_cache=False).logits[0] for r in RECORDS]
    on_flash(model)
    batch = CausalLMCollator(pad_token_id=1, flash_varlen=True)(packed_features())
    with torch.no_grad():
        packed = model(**batch, use_cache=False).logits
        assert kernels.varlen_calls == [[0, 5, 12, 15, 24]] * 2 and kernels.dense_calls == 0  # once per layer
        plain = {k: batch[k] for k in ("input_ids", "position_ids")}
        mixed = model(**plain, use_cache=False).logits  # without the arguments: each row one causal sequence
        assert kernels.dense_calls == 2
    assert (packed[0, :5] - alone[0]).abs().max() <= 1e-5
    assert (packed[0, 5:12] - alone[1]).abs().max() <= 1e-5
    assert (packed[1, :3] - alone[2]).abs().max() <= 1e-5
    assert (mixed[0, 5:12] - alone[1]).abs().max() > 1e-3  # the record attended to the one before it


def test_flash_path_loss_and_gradients_equal_the_mask_path(kernels):
    batch = CausalLMCollator(pad_token_id=1, flash_varlen=True)(packed_features())
    runs = []
    for flash in (False, True):
        model = tiny_gpt2()
        inputs = {k: batch[k] for k in ("input_ids", "position_ids", "labels")}
        if flash:
            on_flash(model)
            inputs.update({k: v for k, v in batch.items() if k not in inputs})
        runs.append(loss_and_grads(model, inputs))
    assert kernels.varlen_calls == [[0, 5, 12, 15, 24]] * 2  # the flash run took the varlen kernel, once per layer
    assert_same_loss_and_grads(*runs)  # the mask path, then flash


def test_training_entry_point_sends_the_arguments(tmp_path, tiny_model_dir, kernels, monkeypatch):
    """run_clm's main, packed, with the model on flash_attention_2: every step takes the varlen kernel."""
    import domainlm.modeling as modeling
    import domainlm.train as train

    real_load = modeling.load_model
    monkeypatch.setattr(modeling, "load_model", lambda *a, **k: on_flash(real_load(*a, **k)))
    batches, collate = [], CausalLMCollator.__call__
    monkeypatch.setattr(CausalLMCollator, "__call__", lambda self, f: batches.append(collate(self, f)) or batches[-1])
    write_text_csv(tmp_path / "train.csv", record_rows(16, words=8))
    out = tmp_path / "out"
    train.main(
        ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(tmp_path / "train.csv"), "--do_train",
         "--sequence_mode", "packed", "--max_steps", "2", "--per_device_train_batch_size", "2",
         "--save_strategy", "no", "--output_dir", str(out), "--report_to", "none", "--disable_tqdm", "true"]
    )  # fmt: skip
    # 2 steps x 2 layers; each call covers both rows end to end (no pad tails), more records than rows
    assert len(kernels.varlen_calls) == 4 and kernels.dense_calls == 0
    assert all(c[0] == 0 and c[-1] <= 2 * 256 and len(c) > 3 for c in kernels.varlen_calls)
    for batch in batches:  # one row, no pads: the only unlabelled tokens are the records' first ones
        starts = batch["cu_seq_lens_q"][:-1]
        assert batch["input_ids"].shape[0] == 1 and (batch["labels"] == -100).sum() == len(starts)
        assert (batch["position_ids"][0, starts] == 0).all()
    assert [b["cu_seq_lens_q"].tolist() for b in batches[:2]] == kernels.varlen_calls[::2]
    assert (out / "model.safetensors").is_file()


def test_benchmark_steps_send_the_arguments(kernels):
    """bench/train_throughput.py on flash_attention_2: its steps and its isolation check take the varlen kernel."""
    from bench.train_throughput import isolation_check, train_step

    model = on_flash(tiny_gpt2()).train()
    batch = CausalLMCollator(pad_token_id=1)(packed_features())  # the benchmark's packed batches: no varlen keys
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = train_step(model, optimizer, batch, torch.device("cpu"), bf16=False)
    assert torch.isfinite(loss) and kernels.varlen_calls == [[0, 5, 12, 15, 24]] * 2
    check = isolation_check(model, [batch], torch.device("cpu"))
    assert check["records_in_row"] == 2 and check["isolated"], check
    assert kernels.varlen_calls[2:] == [[0, 5, 12]] * 2 and kernels.dense_calls == 4  # then each record alone


def neo_config(window=8):
    from transformers import GPTNeoConfig

    config = GPTNeoConfig(num_layers=2, hidden_size=32, num_heads=2, max_position_embeddings=64, vocab_size=50,
                          attention_types=[[["global", "local"], 1]], window_size=window)  # fmt: skip
    config._attn_implementation = "flash_attention_2"
    return config


def test_gpt_neo_on_flash_is_refused_where_it_would_be_wrong():
    from transformers import AutoModelForCausalLM

    from domainlm.modeling import check_flash_window

    neo = AutoModelForCausalLM.from_config(neo_config(), attn_implementation="eager")
    neo.config._attn_implementation = "flash_attention_2"
    with pytest.raises(UserError, match=r"cannot keep packed records apart.*--attn_implementation eager"):
        pa.needs_flash_varlen(neo)
    check_flash_window(neo_config(window=8), 8)  # sequences within the window: the same attention
    with pytest.raises(UserError, match=r"window of 8 tokens.*--block_size 8"):
        check_flash_window(neo_config(window=8), 16)
    assert not pa.needs_flash_varlen(tiny_gpt2())  # sdpa: no varlen arguments


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("flash_attn") is None, reason="needs a GPU and flash-attn"
)
def test_real_flash_kernels_keep_packed_records_apart():
    model = tiny_gpt2().to("cuda", torch.bfloat16)
    with torch.no_grad():
        alone = [model(input_ids=torch.tensor([r], device="cuda"), use_cache=False).logits[0] for r in RECORDS]
        model.set_attn_implementation("flash_attention_2")
        batch = CausalLMCollator(pad_token_id=1, flash_varlen=True)(packed_features())
        batch = {k: v.to("cuda") if torch.is_tensor(v) else v for k, v in batch.items()}
        packed = model(**batch, use_cache=False).logits
        mixed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    assert (packed[0, :5] - alone[0]).abs().max() <= 3e-2
    assert (packed[0, 5:12] - alone[1]).abs().max() <= 3e-2
    assert (packed[1, :3] - alone[2]).abs().max() <= 3e-2
    assert (mixed[0, 5:12] - alone[1]).abs().max() > 0.1
