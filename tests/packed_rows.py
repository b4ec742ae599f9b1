"""One packed batch and a tiny GPT-2, shared by the tests of attention over packed rows.

Row 0 packs two records (5 and 7 tokens); row 1 holds one record of 3 tokens. Each record's first
label is ignored (it would be predicted from the record before).
"""

from __future__ import annotations

from typing import Any

RECORDS = [[5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16], [20, 21, 22]]


def packed_features() -> list[dict[str, Any]]:
    return [
        {"input_ids": RECORDS[0] + RECORDS[1], "labels": [-100, *RECORDS[0][1:], -100, *RECORDS[1][1:]],
         "position_ids": [*range(5), *range(7)]},
        {"input_ids": RECORDS[2], "labels": [-100, *RECORDS[2][1:]], "position_ids": [0, 1, 2]},
    ]  # fmt: skip


def tiny_gpt2(attn: str = "sdpa", attn_pdrop: float = 0.0) -> Any:
    """2 layers without dropout (unless ``attn_pdrop``), in eval mode. Attention is scaled by
    1/(layer + 1) too, so that a path ignoring ``scaling`` (SDPA's default 1/sqrt(d)) fails."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=50, bos_token_id=0, eos_token_id=0,
        attn_pdrop=attn_pdrop, resid_pdrop=0.0, embd_pdrop=0.0, scale_attn_by_inverse_layer_idx=True,
    )  # fmt: skip
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn).eval()


def loss_and_grads(model: Any, inputs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """One forward and backward pass without a cache: the loss and every parameter's gradient."""
    loss = model(**inputs, use_cache=False).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def assert_same_loss_and_grads(expected: tuple[Any, dict[str, Any]], actual: tuple[Any, dict[str, Any]]) -> None:
    """Losses within 1e-6, gradients within 1e-5 (absolute) or 1e-4 (relative), parameter by parameter."""
    import torch

    (loss, grads), (other_loss, other_grads) = expected, actual
    assert torch.allclose(other_loss, loss, atol=1e-6)
    for name, grad in grads.items():
        torch.testing.assert_close(other_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
