"""Evaluation metrics computed locally (the metric hub is not needed): token accuracy, perplexity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

IGNORE_INDEX = -100


def argmax_logits(logits: Any, labels: Any) -> Any:
    """Keep only the predicted ids, so evaluation never holds a batch x length x vocab array."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


def token_accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Share of next tokens predicted exactly, over positions whose label is not ignored.

    ``predictions[:, t]`` is the guess for ``labels[:, t + 1]`` (the model predicts the next token).
    """
    preds = np.asarray(predictions)[:, :-1]
    target = np.asarray(labels)[:, 1:]
    mask = target != IGNORE_INDEX
    total = int(mask.sum())
    return float(((preds == target) & mask).sum() / total) if total else float("nan")


def compute_metrics(eval_pred: Any) -> dict[str, float]:
    predictions, labels = eval_pred.predictions, eval_pred.label_ids
    return {"accuracy": token_accuracy(predictions, labels)}


def perplexity(loss: float) -> float:
    """exp(mean token cross-entropy); inf rather than an overflow for a diverged loss."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")
