"""The Trainer subclass: the Hugging Face Trainer plus what a fine-tuning run reports and saves."""

from __future__ import annotations

from typing import Any

from transformers import Trainer

from domainlm.metrics import perplexity


def drop_tied_copies(model: Any, state_dict: dict[str, Any]) -> dict[str, Any]:
    """Without the tied output head (``lm_head.weight`` = ``wte.weight``) when it is a copy of its source.

    DeepSpeed hands the Trainer a state dict of copies, so the tie is no longer visible and the head
    would be saved twice (320 MB more for GPT2-XL in fp32). Loading ties it again.
    """
    if not getattr(model.config, "tie_word_embeddings", False):
        return state_dict
    tied = getattr(model, "all_tied_weights_keys", None) or getattr(model, "_tied_weights_keys", None) or {}
    if not isinstance(tied, dict):
        return state_dict
    out = dict(state_dict)
    for key, source in tied.items():
        if (
            key in out
            and source in out
            and out[key].shape == out[source].shape
            and bool((out[key] == out[source]).all())
        ):
            del out[key]
    return out


class DomainTrainer(Trainer):
    """Adds perplexity next to every logged evaluation loss, and saves tied weights once."""

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        for key in [k for k in logs if k.endswith("eval_loss")]:
            logs[key[: -len("loss")] + "perplexity"] = perplexity(logs[key])
        super().log(logs, *args, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if state_dict is not None:
            state_dict = drop_tied_copies(self.accelerator.unwrap_model(self.model), state_dict)
        super()._save(output_dir, state_dict=state_dict)
