"""Five ways to turn the same records into training batches, and what each batch costs and teaches.

Every mode gets the same records (tokenised once by ``domainlm.data.tokenize_records``, rows over
the block dropped) and the same number of rows per step, ``batch_size`` sequences of at most
``block_size`` tokens: the same token budget per step, so the same memory ceiling, which is what
decides the batch size on a real accelerator. A mode is better when it fills that budget with tokens
that carry loss. (Giving every mode the same number of *records* per step would instead hand packing
and concatenation fewer, fuller rows; useful tokens per second is fair either way, but a fixed
budget also keeps the peak memory comparable.)

- ``pad_max``: one record per row, every row padded to ``block_size`` (the original job-postings
  project: ``CausalLMCollator(pad_to_multiple_of=block_size)``).
- ``concat``: records joined with end-of-text and cut into full blocks (upstream run_clm,
  ``concat_and_chunk``): no padding, but records are cut in two and attend to their neighbours.
- ``dynamic``: one record per row, padded to the longest record of the batch (``--sequence_mode records``).
- ``grouped``: as ``dynamic``, batches of similar length from the Trainer's ``LengthGroupedSampler``
  (``--sequence_mode records --group_by_length``).
- ``packed``: several records per row with their own position ids (``pack_records``): no record
  attends to another (``--sequence_mode packed``). GPT-2 on sdpa runs SDPA once per record, as
  training does (``domainlm.packed_attention``), and, as training does there, a batch's rows run
  end to end as one row (``flatten_packed``), so rows shorter than the longest cost no padding.
- ``packed_mask`` (not in the default set): the same rows, in the same order, as ``packed``, through
  transformers' own sdpa path, a block-diagonal mask over each whole row, padded to the longest of
  its batch: the attention before ``domainlm.packed_attention``, side by side under the same load.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from domainlm.data import IGNORE_INDEX, CausalLMCollator, concat_and_chunk, pack_records

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

MODES = ("pad_max", "concat", "dynamic", "grouped", "packed", "packed_mask")
DESCRIPTIONS = {
    "pad_max": "one record per row, padded to block_size (original project)",
    "concat": "concatenate and cut into blocks (upstream run_clm); records mix",
    "dynamic": "one record per row, padded per batch (--sequence_mode records)",
    "grouped": "as dynamic, length-grouped batches (--group_by_length)",
    "packed": "records packed per row, own position ids (--sequence_mode packed)",
    "packed_mask": "as packed, attention through the block-diagonal mask (transformers' sdpa)",
}
# Modes whose steps run with transformers' plain sdpa even where packed rows use domainlm.packed_attention.
MASK_PATH = {"packed_mask"}
# Modes in which a record can attend to tokens of another record.
MIXING = {"concat"}


@dataclass
class BatchStats:
    """Token counts of one collated batch."""

    total: int  # every position computed: rows x padded length
    real: int  # non-pad positions
    useful: int  # positions whose next-token label carries loss (the model shifts labels by one)

    @property
    def padding(self) -> float:
        return 1 - self.real / self.total if self.total else 0.0


def batch_stats(batch: dict[str, torch.Tensor], lengths: list[int]) -> BatchStats:
    """Counts for a collated batch; ``lengths`` are the unpadded lengths of its rows.

    A label at position 0 is never a target (logits at t predict labels at t + 1), so useful tokens
    are the labels at positions 1.. that are not ignored; pads and, in packed rows, each record's
    first token (which would be predicted from the previous record) carry none.
    """
    labels = batch["labels"]
    return BatchStats(total=labels.numel(), real=sum(lengths), useful=int((labels[:, 1:] != IGNORE_INDEX).sum().item()))


@dataclass
class ModeData:
    """One mode's epoch: its collated batches, in training order, with their token counts."""

    mode: str
    batches: list[dict[str, torch.Tensor]] = field(repr=False)
    stats: list[BatchStats] = field(repr=False)
    collate_s: float  # seconds to collate the whole epoch (a DataLoader worker's share)
    records: int  # records in the epoch (concat: records before cutting)
    rows: int = 0  # sequences collated (packed: packed rows, however the batches join them)

    def totals(self) -> BatchStats:
        return BatchStats(
            total=sum(s.total for s in self.stats),
            real=sum(s.real for s in self.stats),
            useful=sum(s.useful for s in self.stats),
        )

    def sample(self, n: int) -> list[int]:
        """``n`` batch indices spread evenly over the epoch: quantiles of (positions, useful tokens).

        Step time grows with the positions in a batch and the result with its useful tokens, so timing
        the first ``n`` batches of a length-grouped epoch, or ``n`` random ones, would misstate the
        epoch; quantiles of both do not. Fewer batches than ``n``: they are repeated in turn.
        """
        by_size = sorted(range(len(self.batches)), key=lambda i: (self.stats[i].total, self.stats[i].useful, i))
        k = len(by_size)
        if n >= k:
            return [by_size[i % k] for i in range(n)]
        return [by_size[int((j + 0.5) * k / n)] for j in range(n)]

    def largest(self) -> int:
        """Index of the batch with the most positions: the one that sets the mode's peak memory."""
        return max(range(len(self.batches)), key=lambda i: (self.stats[i].total, -i))


def packing_bounds(lengths: list[int], block_size: int) -> dict[str, Any]:
    """How full packed rows can be at best. Two records over half a block never share a row, so any
    packing needs at least max(tokens / block, records over half a block) rows."""
    import math

    over_half = sum(1 for n in lengths if 2 * n > block_size)
    min_rows = max(math.ceil(sum(lengths) / block_size), over_half)
    return {
        "records_over_half_block": over_half,
        "min_rows": min_rows,
        "max_fill": round(sum(lengths) / (min_rows * block_size), 4),
    }


def _chunks(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def _collate(
    mode: str, rows: list[dict[str, Any]], groups: list[list[int]], collator: CausalLMCollator, n_records: int
) -> ModeData:
    batches, stats = [], []
    started = time.perf_counter()
    for group in groups:
        features = [rows[i] for i in group]
        batch = collator(features)
        batches.append(batch)
        stats.append(batch_stats(batch, [len(f["input_ids"]) for f in features]))
    rows = sum(len(group) for group in groups)
    return ModeData(mode, batches, stats, time.perf_counter() - started, n_records, rows)


def build_modes(
    records: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    batch_size: int,
    modes: tuple[str, ...] | list[str] = MODES,
    seed: int = 0,
    flatten_packed: bool = False,
) -> dict[str, ModeData]:
    """Each mode's epoch over ``records`` (``tokenize_records`` output with its ``text`` column kept).

    Record order is one seeded shuffle, shared by ``pad_max`` and ``dynamic``; ``grouped`` takes the
    Trainer's length-grouped order; packed rows and concatenated blocks are shuffled with the same seed.
    ``flatten_packed``: ``packed`` batches join their rows end to end, as training collates them for
    attention that runs per record (``CausalLMCollator(flatten=True)``); ``packed_mask`` never does.
    """
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown modes {unknown}; choose from {', '.join(MODES)}")
    pad = tokenizer.pad_token_id
    rows = [{"input_ids": x, "labels": y} for x, y in zip(records["input_ids"], records["labels"], strict=True)]
    n = len(rows)
    shuffled = list(range(n))
    random.Random(seed).shuffle(shuffled)
    out: dict[str, ModeData] = {}
    packed_features: list[dict[str, Any]] | None = None
    for mode in modes:
        if mode == "pad_max":
            out[mode] = _collate(mode, rows, _chunks(shuffled, batch_size), CausalLMCollator(pad, block_size), n)
        elif mode == "dynamic":
            out[mode] = _collate(mode, rows, _chunks(shuffled, batch_size), CausalLMCollator(pad), n)
        elif mode == "grouped":
            sampler = LengthGroupedSampler(
                batch_size, lengths=[len(r["input_ids"]) for r in rows], generator=torch.Generator().manual_seed(seed)
            )
            out[mode] = _collate(mode, rows, _chunks(list(sampler), batch_size), CausalLMCollator(pad), n)
        elif mode in ("packed", "packed_mask"):
            flatten = flatten_packed and mode == "packed"
            twin = out.get("packed_mask" if mode == "packed" else "packed")
            if twin is not None and not flatten_packed:  # the same batches
                out[mode] = ModeData(mode, twin.batches, twin.stats, twin.collate_s, twin.records, twin.rows)
                continue
            if packed_features is None:
                packed = pack_records(records.select_columns(["input_ids", "labels"]), block_size)
                packed_features = [
                    {"input_ids": x, "labels": y, "position_ids": p}
                    for x, y, p in zip(packed["input_ids"], packed["labels"], packed["position_ids"], strict=True)
                ]
            order = list(range(len(packed_features)))
            random.Random(seed).shuffle(order)
            collator = CausalLMCollator(pad, flatten=flatten)
            out[mode] = _collate(mode, packed_features, _chunks(order, batch_size), collator, n)
        elif mode == "concat":
            blocks = concat_and_chunk(
                records.select_columns(["text"]), tokenizer, block_size, load_from_cache_file=False
            )
            crow = [{"input_ids": x} for x in blocks["input_ids"]]
            order = list(range(len(crow)))
            random.Random(seed).shuffle(order)
            out[mode] = _collate(mode, crow, _chunks(order, batch_size), CausalLMCollator(pad), n)
    return out
