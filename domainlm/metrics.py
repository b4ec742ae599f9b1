"""Evaluation metrics computed locally (the metric hub is not needed): token accuracy, perplexity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

IGNORE_INDEX = -100


def argmax_logits(logits: Any, labels: Any) -> Any:
    """Per position, the predicted id and the loss of the next label (``(ids, losses)``), so that
    evaluation never holds a batch x length x vocab array.

    ``losses[:, t]`` is the cross-entropy of ``labels[:, t + 1]`` given the logits at ``t`` (0 where that
    label is ignored, and at the last position). The Trainer gathers both over the ranks and drops the
    rows it repeated to even out their last batches, so ``compute_metrics`` sees every row once.
    """
    import torch

    if isinstance(logits, tuple):
        logits = logits[0]
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    losses = torch.zeros(labels.shape, dtype=torch.float32, device=logits.device)
    losses[:, :-1] = torch.where(keep, -picked, torch.zeros_like(picked))
    return logits.argmax(dim=-1), losses


def token_accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Share of next tokens predicted exactly, over positions whose label is not ignored.

    ``predictions[:, t]`` is the guess for ``labels[:, t + 1]`` (the model predicts the next token).
    """
    preds = np.asarray(predictions)[:, :-1]
    target = np.asarray(labels)[:, 1:]
    mask = target != IGNORE_INDEX
    total = int(mask.sum())
    return float(((preds == target) & mask).sum() / total) if total else float("nan")


def token_loss(losses: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy over every predicted token (``losses`` as ``argmax_logits`` gives them)."""
    mask = np.asarray(labels)[:, 1:] != IGNORE_INDEX
    total = int(mask.sum())
    return float(np.asarray(losses, dtype=np.float64)[:, :-1][mask].sum() / total) if total else float("nan")


def compute_metrics(eval_pred: Any) -> dict[str, float]:
    """Token accuracy, and the token-weighted loss (``token_loss``; the Trainer reports it as the loss)."""
    (ids, losses), labels = eval_pred.predictions, eval_pred.label_ids
    return {"accuracy": token_accuracy(ids, labels), "token_loss": token_loss(losses, labels)}


def perplexity(loss: float) -> float:
    """exp(mean token cross-entropy); inf rather than an overflow for a diverged loss."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")
