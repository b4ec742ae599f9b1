"""The Trainer subclass: the Hugging Face Trainer plus what a fine-tuning run reports."""

from __future__ import annotations

from typing import Any

from transformers import Trainer

from domainlm.metrics import perplexity


class DomainTrainer(Trainer):
    """Adds perplexity next to every logged evaluation loss (``eval_perplexity``)."""

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        for key in [k for k in logs if k.endswith("eval_loss")]:
            logs[key[: -len("loss")] + "perplexity"] = perplexity(logs[key])
        super().log(logs, *args, **kwargs)
