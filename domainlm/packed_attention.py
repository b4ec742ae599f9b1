"""Packed rows pay only their records' attention: SDPA run per record ("varlen" attention on CPU).

A packed row (``--sequence_mode packed``) holds several records, each with position ids restarting
at 0, and no attention mask. transformers 5.x detects the restarts and hands ``sdpa`` a 4-D
block-diagonal boolean mask; with a mask, PyTorch's CPU flash kernel computes the whole
``block_size x block_size`` square of every row. Concatenated rows instead call SDPA with
``is_causal=True``, which skips every block above the diagonal.

Here the row is cut where the records are, and each record runs through
``torch.nn.functional.scaled_dot_product_attention(..., is_causal=True)`` on its own: a record of
``n`` tokens costs its causal triangle, about ``n^2 / 2``, instead of a share of the full square.
The tail of padding the collator adds to a short row has its own restarting position ids, so it is
one more (short) segment, never a square. Over an epoch of the real postings (block 1024, 4 rows a
step) that is 0.33 of the score entries the mask computes; causal attention over whole rows, as
concat pays, would be 0.50. Training avoids even the pad tails: it collates a batch's rows end to end
into one row (``CausalLMCollator(flatten=True)``), which only attention per record allows.

Two functions are registered under the name ``sdpa_packed``:

- the mask function (``AttentionMaskInterface``). ``create_causal_mask`` calls it; when the call is
  the one transformers makes for packed rows (no 2-D attention mask, no cache, query length = key
  length, the is-causal shortcut refused, no sliding window, no custom mask overlays), it returns a
  small ``PackedSegments`` (the segment lengths, row after row) instead of the 4-D mask. The lengths
  come from the very mask function transformers built: token ``i`` starts a segment when it may not
  attend to token ``i - 1``. Every other call goes to transformers' own ``sdpa_mask``, unchanged.
- the attention function (``AttentionInterface``). Given ``PackedSegments`` it views the batch's
  rows end to end, splits query, key and value once, runs SDPA per segment and joins the outputs
  with one ``cat``. Anything else, a padded batch with its attention mask, generation with a cache,
  goes to transformers' ``sdpa_attention_forward`` with the same arguments: the same mask, the same
  kernel, the same result.

Measured alternatives (docs/benchmarks.md). Grouping equal-length segments into one call: 7 of the
epoch's 1,262 segments share a length with another in their batch, nothing to group. One call per
row, its segments padded to the longest: 0.57 of the mask's work, more than whole-row causal. One
call of the CPU flash kernel with ``is_causal`` and the block-diagonal mask together (the public
SDPA refuses both at once): exact, 0.50 of the work, the mask path's number of kernels; 4% faster
than the mask path where per-segment calls are 14% faster. The price of per-segment calls is their
number (about 8 segments a step, each a few small kernels forward and backward): on a CPU with more
runnable threads than cores and OpenMP's default spin-wait, each small kernel waits out a time
slice, and the mask path is faster. ``busy_cpu_hint`` says so in the log.

Only GPT-2 with ``sdpa`` is switched (``use_packed_attention``); GPT-Neo (eager, with local layers
that use a sliding window) and eager GPT-2 keep the mask path. GPT-2 on ``flash_attention_2`` needs no
switch: the collator hands it FlashAttention's varlen arguments (``needs_flash_varlen``,
``domainlm.data.flash_varlen_kwargs``), and one varlen call covers every record of the batch. The
name ``sdpa_packed`` lives only in the model's in-memory config: transformers never writes
``_attn_implementation`` into config.json, so a saved folder loads with plain
``pipeline('text-generation', model=dir)`` (``sdpa``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domainlm.errors import UserError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

NAME = "sdpa_packed"

# Arguments of the attention interface this path does not implement: with any of them set, plain sdpa runs.
_UNSUPPORTED_KWARGS = ("position_bias", "cache", "softcap", "s_aux", "sinks", "sliding_window")


@dataclass(frozen=True)
class PackedSegments:
    """Where the rows of a packed batch split: every segment's length, row after row.

    Stands in for the attention mask of a packed batch: ``rows`` rows of ``row_length`` tokens, and
    each row's segments add up to ``row_length``.
    """

    lengths: tuple[int, ...]
    rows: int
    row_length: int

    def __post_init__(self) -> None:
        if sum(self.lengths) != self.rows * self.row_length or min(self.lengths, default=1) < 1:
            raise ValueError(f"segment lengths {self.lengths} do not tile {self.rows} rows of {self.row_length}")

    def dense_mask(self, device: Any = None) -> torch.Tensor:
        """The 4-D boolean mask (rows, 1, row_length, row_length) that these segments stand for."""
        import torch

        ids = torch.repeat_interleave(torch.arange(len(self.lengths)), torch.tensor(self.lengths))
        ids = ids.to(device).view(self.rows, self.row_length)
        causal = torch.ones(self.row_length, self.row_length, dtype=torch.bool, device=device).tril()
        return ((ids[:, :, None] == ids[:, None, :]) & causal)[:, None]


def _is_compiling() -> bool:
    import torch

    return bool(getattr(torch.compiler, "is_compiling", lambda: False)())


def segments_from_mask_function(
    mask_function: Any, batch_size: int, length: int, device: Any = None
) -> PackedSegments | None:
    """The segments of a block-diagonal causal mask, read from its index-based mask function.

    Token ``i`` starts a segment when it may not attend to ``i - 1``. None unless every token attends
    to itself and none to the next one (the causal pattern), e.g. for bidirectional blocks.
    """
    import torch

    b = torch.arange(batch_size, device=device)[:, None]
    h = torch.zeros(1, 1, dtype=torch.long, device=device)
    i = torch.arange(length, device=device)[None, :]
    if length > 1:
        prev = mask_function(b, h, i[:, 1:], i[:, :-1]).expand(batch_size, length - 1)
        nxt = mask_function(b, h, i[:, :-1], i[:, 1:]).expand(batch_size, length - 1)
        if bool(nxt.any()):
            return None
    else:
        prev = torch.ones(batch_size, 0, dtype=torch.bool, device=device)
    if not bool(mask_function(b, h, i, i).all()):
        return None
    starts = torch.cat([torch.ones(batch_size, 1, dtype=torch.bool, device=device), ~prev.bool()], dim=1)
    # segment ids, unique across rows, then the run lengths of equal ids
    ids = starts.long().cumsum(dim=1) + torch.arange(batch_size, device=device)[:, None] * (length + 1)
    counts = torch.unique_consecutive(ids.flatten(), return_counts=True)[1]
    return PackedSegments(tuple(counts.tolist()), batch_size, length)


def packed_sdpa_mask(*args: Any, **kwargs: Any) -> Any:
    """``AttentionMaskInterface`` entry: ``PackedSegments`` for packed rows, else transformers' ``sdpa_mask``."""
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    if not args and _is_packed_call(kwargs):
        segments = segments_from_mask_function(
            kwargs.get("mask_function", causal_mask_function),
            kwargs["batch_size"],
            kwargs["q_length"],
            kwargs.get("device"),
        )
        if segments is not None:
            return segments
    return sdpa_mask(*args, **kwargs)


def _is_packed_call(kwargs: dict[str, Any]) -> bool:
    """The arguments ``create_causal_mask`` passes after it detected packed rows (and no other overlay).

    It refuses the is-causal shortcut for packed rows; a bidirectional or sliding-window mask, a 2-D
    padding mask, a cache (offsets) or custom mask functions (vmap) each send the call to ``sdpa_mask``.
    """
    return (
        kwargs.get("attention_mask") is None
        and kwargs.get("allow_is_causal_skip") is False
        and "allow_is_bidirectional_skip" not in kwargs
        and kwargs.get("local_size") is None
        and not kwargs.get("use_vmap", False)
        and isinstance(kwargs.get("q_length"), int)
        and kwargs.get("q_length") == kwargs.get("kv_length")
        and kwargs.get("q_offset", 0) == 0
        and kwargs.get("kv_offset", 0) == 0
        and isinstance(kwargs.get("batch_size"), int)
        and not _is_compiling()
    )


def packed_sdpa_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``AttentionInterface`` entry: per-segment causal SDPA for ``PackedSegments``, else plain sdpa.

    Inputs are (batch, heads, length, head_dim); the output is (batch, length, heads, head_dim), as
    transformers' sdpa function returns it.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if isinstance(attention_mask, PackedSegments):
        if _segmentable(module, query, key, attention_mask, is_causal, kwargs):
            return segmented_attention(query, key, value, attention_mask.lengths, dropout, scaling), None
        attention_mask = attention_mask.dense_mask(query.device)  # the mask the sdpa path would have had
    return sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
    )


def _segmentable(
    module: Any, query: Any, key: Any, segments: PackedSegments, is_causal: bool | None, kwargs: dict[str, Any]
) -> bool:
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    return (
        bool(causal)
        and query.shape[0] == key.shape[0] == segments.rows
        and query.shape[2] == key.shape[2] == segments.row_length
        and query.shape[1] == key.shape[1]  # no grouped-query heads
        and all(kwargs.get(k) is None for k in _UNSUPPORTED_KWARGS)
    )


def segmented_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    lengths: tuple[int, ...] | list[int],
    dropout: float = 0.0,
    scaling: float | None = None,
) -> torch.Tensor:
    """Causal SDPA within each segment of the rows laid end to end; (batch, length, heads, head_dim) out.

    Rows are laid end to end head-major, (heads, batch x length, head_dim): a view of GPT-2's
    projections, no copy. One ``split`` per input and one ``cat`` for the output, along that middle
    axis, so that each copy moves whole runs of ``n x head_dim`` numbers; their backward passes are
    views and one such ``cat``. (Slicing each segment out instead would zero-fill a full-size gradient
    per slice, and joining (n, heads, head_dim) pieces moves head_dim numbers at a time: both cost
    more than the attention saved.)
    """
    import torch
    from torch.nn.functional import scaled_dot_product_attention

    batch, heads, length, _ = query.shape
    sizes = list(lengths)

    def pieces(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x.transpose(0, 1).reshape(heads, batch * length, x.shape[-1]).split(sizes, dim=1)

    outs = [
        # unsqueeze/squeeze, not [None]/[0]: indexing's backward zero-fills and copies a gradient per segment
        scaled_dot_product_attention(
            q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), dropout_p=dropout, scale=scaling, is_causal=True
        ).squeeze(0)
        for q, k, v in zip(pieces(query), pieces(key), pieces(value), strict=True)
    ]
    out = torch.cat(outs, dim=1).view(heads, batch, length, value.shape[-1])
    return out.permute(1, 2, 0, 3).contiguous()


def register() -> None:
    """Make ``attn_implementation="sdpa_packed"`` known to transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, packed_sdpa_attention_forward)
    AttentionMaskInterface.register(NAME, packed_sdpa_mask)


def can_use(model: PreTrainedModel) -> bool:
    """GPT-2 on ``sdpa`` (or already on this path): verified equal to the mask path; nothing else is switched."""
    config = model.config
    return config.model_type == "gpt2" and config._attn_implementation in ("sdpa", NAME)


def runs_per_record(model_type: str, attn_implementation: str) -> bool:
    """Whether packed rows get attention per record: GPT-2 on ``sdpa`` (switched to ``sdpa_packed``) or on
    ``flash_attention_2`` (varlen). Only then can a batch's rows run end to end
    (``CausalLMCollator(flatten=True)``); the mask path would build one square over the joined rows."""
    return model_type == "gpt2" and attn_implementation in ("sdpa", NAME, "flash_attention_2")


def needs_flash_varlen(model: PreTrainedModel) -> bool:
    """Whether packed batches must bring FlashAttention's varlen arguments: GPT-2 on ``flash_attention_2``.

    Without them, transformers' flash path runs each row of a batch of several as one causal sequence,
    and the records of a row attend to each other. GPT-Neo's flash class passes no such arguments to
    the kernel (nor its position ids), so packed rows with it are refused in one line.
    """
    config = model.config
    if config._attn_implementation != "flash_attention_2":
        return False
    if config.model_type != "gpt2":
        raise UserError(
            f"--sequence_mode packed with --attn_implementation flash_attention_2: transformers' {config.model_type} "
            "flash attention cannot keep packed records apart (they would attend to each other); use "
            "--attn_implementation eager, or --sequence_mode records"
        )
    return True


def use_packed_attention(model: PreTrainedModel) -> bool:
    """Switch a GPT-2 model on ``sdpa`` to per-record attention for packed rows; returns whether it did.

    Batches that are not packed (padding with an attention mask, generation with a cache) still take
    plain sdpa. Logs one line either way.
    """
    if model.config._attn_implementation == "flash_attention_2":
        logger.info(
            "packed rows: flash_attention_2, one varlen call over the batch's records (cu_seq_lens from the collator)"
        )
        return False
    if not can_use(model):
        logger.info(
            "packed rows: %s attention on %s, as transformers handles it (per-record SDPA is for GPT-2 on sdpa)",
            model.config._attn_implementation,
            model.config.model_type,
        )
        return False
    register()
    model.set_attn_implementation(NAME)
    logger.info(
        "packed rows: attention %s, causal SDPA per record (no block_size x block_size mask); "
        "other batches use plain sdpa",
        NAME,
    )
    hint = busy_cpu_hint()
    if hint:
        logger.warning(hint)
    return True


class NoMaskWarningFilter(logging.Filter):
    """Packed rows have no attention mask by design: their position ids keep the records apart. transformers'
    warning that input ids which look padded come without one does not apply to them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "We strongly recommend passing in an `attention_mask`" not in record.getMessage()


def busy_cpu_hint() -> str | None:
    """A warning when this path's many small kernels would each wait out a time slice, else None.

    On a CPU with more runnable work than cores, OpenMP's default spin-wait makes every parallel
    region cost milliseconds (docs/benchmarks.md: the packed step 1.3x slower than the mask path
    there, 1.14x faster with ``OMP_WAIT_POLICY=PASSIVE``, which sped every mode up 2.2x).
    """
    import torch

    if os.environ.get("OMP_WAIT_POLICY") or torch.get_num_threads() < 2 or torch.cuda.is_available():
        return None
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cores = os.cpu_count() or 1
    if load <= cores:
        return None
    return (
        f"load average {load:.1f} on {cores} cores: OpenMP threads that spin-wait stall every small kernel of the "
        "per-record attention (and AdamW's); start with OMP_WAIT_POLICY=PASSIVE (or OMP_NUM_THREADS=1) on a shared machine"
    )


def use_plain_sdpa(model: PreTrainedModel) -> None:
    """Back to transformers' own ``sdpa`` (e.g. before handing the model to code that checks the name)."""
    if model.config._attn_implementation == NAME:
        model.set_attn_implementation("sdpa")
