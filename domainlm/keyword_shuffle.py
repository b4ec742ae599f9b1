"""Reshuffling each record's keyword order every epoch, as the original job-postings project did.

A model that always sees keywords in the same order can learn the order instead of the keywords.
The shuffle is a pure function of ``(seed, epoch, record text)``, so a run is reproducible, a
resumed run reshuffles exactly as the uninterrupted one would, and data-parallel ranks agree.
Evaluation sees the records unshuffled.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback

from domainlm.data import IGNORE_INDEX, RecordEncoder
from domainlm.template import format_record, is_record, parse_record


def shuffle_keywords(text: str, seed: int, epoch: int) -> str:
    """The record with its keywords in a new order; other text is returned unchanged."""
    if not is_record(text):
        return text
    rec = parse_record(text)
    keywords = list(rec.keywords)
    random.Random(f"{seed}:{epoch}:{text}").shuffle(keywords)
    return format_record(rec.title, keywords, rec.body)


@dataclass
class KeywordShuffler:
    """Re-encodes the records of a batch with shuffled keywords (``epoch`` None: leaves them as they are).

    A row whose re-encoded length would exceed ``block_size`` keeps its original encoding.
    """

    encoder: RecordEncoder
    block_size: int
    seed: int
    epoch: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for f in features:
            texts = list(f["texts"]) if "texts" in f else [f["text"]]
            model_inputs = {k: v for k, v in f.items() if k not in ("text", "texts")}
            shuffled = self._reshuffled(model_inputs, texts) if self.epoch is not None else None
            out.append(shuffled or model_inputs)
        return out

    def _reshuffled(self, f: dict[str, Any], texts: list[str]) -> dict[str, Any] | None:
        new = [shuffle_keywords(t, self.seed, self.epoch) for t in texts]
        ids, labels = self.encoder.encode(new)
        if sum(len(x) for x in ids) > self.block_size:
            return None
        if "position_ids" not in f:
            return {"input_ids": ids[0], "labels": labels[0]}
        return {
            "input_ids": [t for x in ids for t in x],
            "labels": [t for y in labels for t in [IGNORE_INDEX, *y[1:]]],
            "position_ids": [p for x in ids for p in range(len(x))],
        }

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        epoch, self.epoch = self.epoch, None
        try:
            yield
        finally:
            self.epoch = epoch


class KeywordShuffleCallback(TrainerCallback):
    """Tells the shuffler which epoch begins."""

    def __init__(self, shuffler: KeywordShuffler) -> None:
        self.shuffler = shuffler

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.shuffler.epoch = int(state.epoch or 0)
