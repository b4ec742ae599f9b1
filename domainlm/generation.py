"""Generating postings from a title and keywords (or free text) with a fine-tuned folder, in batches.

Prompts are built by ``domainlm.template.format_prompt``, the function that formatted the training
rows. Generation runs ``model.generate`` on batches of prompts padded on the LEFT, so every prompt
ends where its continuation starts; prompts are grouped by length to waste little on padding.

Every output is reproducible on its own: sampling draws each row's tokens from that row's own random
generator, seeded with ``seed + prompt index`` (further returns of a prompt: see ``draw_seed``), so a
row comes out the same alone or in any batch, and ``--seed`` gives the same file twice. On CPU a row's
first return is even what ``transformers.set_seed(row seed)`` then a one-prompt ``pipeline(...,
do_sample=True)`` call with the same settings writes (tested), but for a character cut off by
``max_new_tokens`` (the pipeline shows its first bytes as U+FFFD; here it is left out, see
``drop_unfinished_char``). Greedy and beam search do not draw at all.

With no ``max_new_tokens``, generation runs until end-of-text or until the context is full, and a
batch's room is what its longest prompt leaves: a row cut there rather than at end-of-text can come
out shorter than alone. Passing its ``Generation.max_new_tokens`` as ``max_new_tokens`` reproduces it,
alone or in any batch.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domainlm.errors import UserError, first_line
from domainlm.template import KEYWORD_JOINER, SEP_TOKEN, clean_keywords, format_prompt, is_record, parse_record

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

STRATEGIES = ("greedy", "beam", "top_k", "top_p", "top_k_top_p")
_SAMPLING = ("top_k", "top_p", "top_k_top_p")


@dataclass
class Prompt:
    prompt: str
    title: str | None = None
    keywords: str | None = None  # cleaned, joined with ", "
    reference: str | None = None  # the real body, when the file row holds a whole record
    line: Any = None  # the row's ``_line`` in the prompts file, for errors


@dataclass
class GenerationSettings:
    """How to decode. Flags of generate.py and evaluate_model.py are made from these fields."""

    strategy: str = field(
        default="top_k_top_p",
        metadata={
            "choices": STRATEGIES,
            "help": "greedy; beam search; sampling from the top-k tokens, the top-p mass, or both "
            "(the saved folder's default: top-k 50, top-p 0.95)",
        },
    )
    max_new_tokens: int | None = field(
        default=None,
        metadata={
            "help": "longest continuation in tokens; clipped, with a warning, to fit the model's context",
            "unset": "none given: until end-of-text or the context is full (context minus the prompt's tokens; in a "
            "batch, minus its longest prompt's)",
        },
    )
    temperature: float | None = field(default=None, metadata={"help": "sampling only: <1 sharper, >1 flatter [1.0]"})
    top_k: int | None = field(default=None, metadata={"help": "top_k, top_k_top_p: keep the k likeliest tokens [50]"})
    top_p: float | None = field(
        default=None, metadata={"help": "top_p, top_k_top_p: keep the smallest set with this much mass [0.95]"}
    )
    num_beams: int | None = field(default=None, metadata={"help": "beam: beams kept [4]"})
    repetition_penalty: float = field(default=1.0, metadata={"help": "divide logits of tokens already seen; 1 = off"})
    no_repeat_ngram_size: int = field(default=0, metadata={"help": "never repeat an n-gram of this size; 0 = off"})
    num_return_sequences: int = field(default=1, metadata={"help": "outputs per prompt (beam: at most num_beams)"})
    seed: int = field(default=0, metadata={"help": "prompt i is sampled with seed + i: same seed, same output"})
    batch_size: int = field(default=16, metadata={"help": "prompts generated together (left-padded)"})

    def __post_init__(self) -> None:
        s = self.strategy
        if s not in STRATEGIES:
            raise UserError(f"--strategy {s}: choose one of {', '.join(STRATEGIES)}")
        uses = {
            "--temperature": s in _SAMPLING,
            "--top_k": s in ("top_k", "top_k_top_p"),
            "--top_p": s in ("top_p", "top_k_top_p"),
            "--num_beams": s == "beam",
        }
        for flag, used in uses.items():
            if not used and getattr(self, flag[2:]) is not None:
                raise UserError(f"{flag} does nothing with --strategy {s}; leave it out or choose another strategy")
        # defaults of the strategies in use: the ones configure_generation saves with the model
        if uses["--temperature"] and self.temperature is None:
            self.temperature = 1.0
        if uses["--top_k"] and self.top_k is None:
            self.top_k = 50
        if uses["--top_p"] and self.top_p is None:
            self.top_p = 0.95
        if uses["--num_beams"] and self.num_beams is None:
            self.num_beams = 4
        checks = [
            (self.max_new_tokens is None or self.max_new_tokens >= 1, "--max_new_tokens", "at least 1"),
            (self.temperature is None or self.temperature > 0, "--temperature", "above 0"),
            (self.top_k is None or self.top_k >= 1, "--top_k", "at least 1"),
            (self.top_p is None or 0 < self.top_p <= 1, "--top_p", "in (0, 1]"),
            (self.num_beams is None or self.num_beams >= 2, "--num_beams", "at least 2 (1 is greedy)"),
            (self.repetition_penalty > 0, "--repetition_penalty", "above 0"),
            (self.no_repeat_ngram_size >= 0, "--no_repeat_ngram_size", "0 or more"),
            (self.num_return_sequences >= 1, "--num_return_sequences", "at least 1"),
            (self.batch_size >= 1, "--batch_size", "at least 1"),
            (self.seed >= 0, "--seed", "0 or more"),
        ]
        for ok, flag, want in checks:
            if not ok:
                raise UserError(f"{flag} {getattr(self, flag[2:])}: must be {want}")
        if s == "greedy" and self.num_return_sequences > 1:
            raise UserError("--num_return_sequences > 1 with --strategy greedy gives copies; sample, or use beam")
        if s == "beam" and self.num_return_sequences > self.num_beams:
            raise UserError(
                f"--num_return_sequences {self.num_return_sequences} exceeds --num_beams {self.num_beams}; "
                "raise --num_beams"
            )

    @property
    def sampling(self) -> bool:
        return self.strategy in _SAMPLING

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def add_generation_arguments(parser: argparse.ArgumentParser, **defaults: Any) -> None:
    """One flag per ``GenerationSettings`` field; ``defaults`` overrides a field's default."""
    group = parser.add_argument_group("generation")
    for f in fields(GenerationSettings):
        kind = {"int": int, "float": float, "str": str}[str(f.type).split(" ")[0]]
        default = defaults.get(f.name, f.default)
        text = f.metadata["help"]
        if default is not None and "[" not in text:  # the script's own default (400 new tokens, ...)
            text = f"{text} [{default}]"
        elif default is None and "unset" in f.metadata:  # what no number means
            text = f"{text} [{f.metadata['unset']}]"
        group.add_argument(f"--{f.name}", type=kind, default=default, choices=f.metadata.get("choices"), help=text)


def settings_from_args(args: argparse.Namespace) -> GenerationSettings:
    return GenerationSettings(**{f.name: getattr(args, f.name) for f in fields(GenerationSettings)})


@dataclass
class Generation:
    """One output: which prompt, which return, what was written after the prompt."""

    index: int  # position of the prompt in the list given
    return_index: int
    seed: int
    text: str  # the continuation, end-of-text and padding removed
    new_tokens: int  # tokens generated, the end-of-text included when there is one
    stopped: bool  # True when the model wrote end-of-text (rather than running out of tokens)
    max_new_tokens: int  # the number used: after clipping, or the room the context left (none given)


def prompts_from_file(path: str | Path, limit: int | None = None) -> list[Prompt]:
    """Prompts from a CSV/JSONL with ``title`` (+ ``keywords``) or ``prompt`` columns, or record rows.

    The ``validation.csv`` that prepare_jobs.py writes works as it is; its bodies become references.
    """
    from domainlm.tables import cell_text, read_table, row_at

    rows = read_table(path)
    out: list[Prompt] = []
    for r in rows:
        line = r.get("_line")
        text, title, prompt = (cell_text(path, r, c) for c in ("text", "title", "prompt"))
        rec = parse_record(text) if is_record(text) else None
        try:
            if title:
                kws = KEYWORD_JOINER.join(clean_keywords(cell_text(path, r, "keywords", lists=True)))
                out.append(Prompt(format_prompt(title, kws), title, kws, rec.body if rec else None, line))
            elif prompt:
                out.append(Prompt(prompt, line=line))
            elif rec is not None:
                kws = KEYWORD_JOINER.join(rec.keywords)
                out.append(Prompt(format_prompt(rec.title, rec.keywords), rec.title, kws, rec.body, line))
            elif text:
                raise UserError(
                    f"{path}: {row_at(path, line)}: its 'text' is plain text, not a record "
                    f"(title{SEP_TOKEN}keywords{SEP_TOKEN}body); give the text to continue in a 'prompt' column, "
                    "or one with --prompt"
                )
            else:
                columns = sorted({k for row in rows for k in row if k != "_line"})
                if not {"title", "prompt", "text"} & set(columns):
                    raise UserError(
                        f"{path} has no 'title', 'prompt' or 'text' column (columns: "
                        f"{', '.join(repr(c) for c in columns)}); name the column of job titles 'title' (and that "
                        "of their keywords 'keywords'), or that of texts to continue 'prompt'"
                    )
                raise UserError(
                    f"{path}: {row_at(path, line)}: needs a 'title' (and 'keywords'), a 'prompt' or a record 'text'"
                )
        except ValueError as err:  # a separator inside a title or keyword
            raise UserError(f"{path}: {row_at(path, line)}: {err}") from None
        if limit is not None and len(out) >= limit:
            break
    return out


_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")  # name or owner/name: letters, digits, "-", "_" and "."
# What pipeline() reads of a model repository; a hub repository may also hold TF, Flax, ONNX or Rust weights.
MODEL_FILES = ["*.json", "*.safetensors", "pytorch_model*.bin", "*.txt", "*.model"]


def is_hub_name(model_dir: str | Path) -> bool:
    """Not a local folder (nor a broken link), and shaped as a model hub id (``name`` or ``owner/name``)."""
    from domainlm.tokenizer import looks_like_path

    path, name = Path(model_dir), str(model_dir)
    return not (path.exists() or path.is_symlink() or looks_like_path(name)) and bool(_HUB_ID.fullmatch(name))


def local_model_dir(model_dir: str | Path, flag: str = "--model_dir", revision: str | None = None) -> Path:
    """``model_dir`` as a local folder. A model hub name (``you/jobs-gpt2``, as ``run_clm.py --push_to_hub``
    uploads it) is downloaded into the hub cache, or read from there when the hub cannot be reached
    (``domainlm.hub``: one short request, one line when neither has it); its folder there is returned.
    ``revision``: a branch, tag or commit of the hub name (``--hub_revision`` of the run that pushed it)."""
    if not is_hub_name(model_dir):
        if revision:
            raise UserError(f"--revision {revision} is for a model hub name; {flag} {model_dir} is a local folder")
        return Path(model_dir)
    from huggingface_hub import snapshot_download

    from domainlm.hub import load_by_name

    name = str(model_dir)
    folder = load_by_name(
        lambda local: snapshot_download(name, revision=revision, local_files_only=local, allow_patterns=MODEL_FILES),
        name,
        flag,
        "model",
        "pass the folder run_clm.py wrote",
    )
    return Path(folder)


def check_model_dir(model_dir: str | Path, flag: str = "--model_dir") -> Path:
    """The folder, or a UserError that says what it is instead of a model folder and what to pass."""
    from domainlm.modeling import WEIGHT_FILES
    from domainlm.tokenizer import TOKENIZER_FILES

    path = Path(model_dir)
    if not path.exists():
        raise UserError(f"{flag} {model_dir}: no such folder")
    if not path.is_dir():
        raise UserError(f"{flag} {model_dir} is a file; give the folder run_clm.py wrote the model to")
    has = {name for name in (*WEIGHT_FILES, *TOKENIZER_FILES, "config.json") if (path / name).is_file()}
    deepspeed = (path / "latest").is_file() or any(p.is_dir() for p in path.glob("global_step*"))
    if any(path.glob("*_model_states.pt")) or any(path.glob("*_optim_states.pt")):
        raise UserError(
            f"{flag} {model_dir}: DeepSpeed's own files of one checkpoint, not a model; pass the checkpoint-N folder "
            f"that holds it ({path.absolute().parent.name}), or the folder run_clm.py wrote at the end of training"
        )
    if deepspeed and not has & set(WEIGHT_FILES):
        raise UserError(
            f"{flag} {model_dir}: a DeepSpeed checkpoint (global_step*) without the model's weights (ZeRO-3 saves "
            "them only with stage3_gather_16bit_weights_on_model_save); write them with "
            f"`python {path / 'zero_to_fp32.py'} {model_dir} OUT` and copy config.json and the tokenizer into OUT"
        )
    checkpoints = sorted(
        (p for p in path.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()), key=lambda p: int(p.name[11:])
    )
    if "config.json" not in has:
        if checkpoints:
            raise UserError(
                f"{flag} {model_dir}: no final model, only checkpoints ({', '.join(p.name for p in checkpoints)}): "
                f"training did not finish; pass --model_dir {checkpoints[-1]}, or resume training"
            )
        raise UserError(f"{flag} {model_dir}: no config.json in this folder; give the folder run_clm.py wrote")
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:  # a JSON or UTF-8 error, an unreadable file
        raise UserError(
            f"{flag} {model_dir}: its config.json is not valid JSON ({first_line(err)}); copy the folder again"
        ) from None
    if not has & set(WEIGHT_FILES):
        raise UserError(
            f"{flag} {model_dir}: the folder holds no weights (none of {', '.join(WEIGHT_FILES)}); "
            "give the folder run_clm.py wrote at the end of training, or a checkpoint-N folder"
        )
    if not has & set(TOKENIZER_FILES):
        raise UserError(
            f"{flag} {model_dir}: the folder holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}); copy the "
            "tokenizer files training used (its --tokenizer_name folder) into it"
        )
    return path


@contextlib.contextmanager
def loading_bars(shown: bool) -> Iterator[None]:
    """transformers' "Loading weights" bars during the block, or none (``--quiet``); as they were after it."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if not shown:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_model_dir(
    model_dir: str | Path, device: str | None = None, progress: bool = True, revision: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model (eval mode, on the GPU when there is one) and tokenizer of a folder written by run_clm.py, or of
    a model hub name (``revision``: its branch, tag or commit; ``local_model_dir``); ``progress=False``:
    without transformers' "Loading weights" bar (``--quiet``). A folder that cannot be loaded (a damaged
    config.json, tokenizer or weights file) is a UserError naming ``--model_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from domainlm.modeling import _local_load

    model_dir = local_model_dir(model_dir, revision=revision)
    check_model_dir(model_dir)
    remedy = "copy the folder again, or train again"
    with loading_bars(progress):
        tokenizer = _local_load(AutoTokenizer, str(model_dir), "--model_dir", "tokenizer", remedy)
        model = _local_load(AutoModelForCausalLM, str(model_dir), "--model_dir", "model", remedy)
    if len(tokenizer) < 2:
        raise UserError(f"--model_dir {model_dir}: its tokenizer files hold no vocabulary; copy the tokenizer again")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), tokenizer


def draw_seed(seed: int, return_index: int) -> int:
    """The seed of one output row: the prompt's own for its first return, one mixed from both for the others.

    (``torch.Generator`` keeps only the low 32 bits of a seed, so ``seed + r * 2**32`` would repeat.)
    """
    if return_index == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, return_index]).generate_state(1)[0])


class PromptTooLongError(UserError):
    """A prompt that fills the model's whole context; ``index`` is its place in the list given."""

    def __init__(self, index: int, tokens: int, context: int) -> None:
        self.index, self.tokens, self.context = index, tokens, context
        super().__init__(f"prompt {index + 1} is {tokens} tokens: the model's whole context of {context}; shorten it")


class RowSampler:
    """The last logits processor: draws each row's next token with the row's own ``torch.Generator``.

    It returns logits that are -inf everywhere but at the drawn token, and generation runs in greedy
    mode, so greedy's argmax takes exactly that token. The processors before it (repetition penalty,
    no-repeat n-gram, then temperature, top-k, top-p, given with it) run in the order ``generate``
    uses for sampling. What a row draws then depends on its seed and its own tokens only, never on
    the other rows of its batch.
    """

    def __init__(self, seeds: list[int]) -> None:
        import torch

        self.generators = [torch.Generator().manual_seed(s) for s in seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        probs = torch.softmax(scores.float(), dim=-1).cpu()
        drawn = [torch.multinomial(p, 1, generator=g) for p, g in zip(probs, self.generators, strict=True)]
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(drawn)), torch.cat(drawn).to(scores.device)] = 0.0
        return out


class SeparatorLimit:
    """A logits processor: a row that holds two ``<|SEP|>`` already (``title<|SEP|>keywords<|SEP|>``, the
    prompt of a record) never gets a third. Training rows hold exactly two, and a posting's body none
    (data preparation refuses one), yet a model trained briefly writes the separator into bodies (23 of
    the 42 postings of ``launch.sh``'s default evaluation), which breaks the record's layout."""

    LIMIT = 2

    def __init__(self, sep_id: int) -> None:
        self.sep_id = sep_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        full = (input_ids == self.sep_id).sum(dim=-1) >= self.LIMIT
        if full.any():
            scores = scores.clone()
            scores[full, self.sep_id] = float("-inf")
        return scores


# Settings of the saved generation config that generate.py has no flag for and keeps: which ids may
# never come (run_clm.py saves the padded embedding rows and <|pad|> in suppress_tokens), and a few more
# that act on each row's own new tokens, so a row still comes out the same alone or in any batch. The
# rest is decided by the flags (sampling, beams, lengths, penalties) or by how generate_batch works
# (left padding, one row per return, plain tensors out); ``min_length`` is left out as it counts the padding.
KEPT_SAVED_SETTINGS = (
    "suppress_tokens",
    "begin_suppress_tokens",
    "bad_words_ids",
    "sequence_bias",
    "min_new_tokens",
    "length_penalty",
    "exponential_decay_length_penalty",
)


def _generation_config(tokenizer: PreTrainedTokenizerBase, s: GenerationSettings, new: int, saved: Any = None) -> Any:
    """The config ``generate`` runs with: the flags' settings, and ``KEPT_SAVED_SETTINGS`` of ``saved``
    (the folder's ``generation_config``)."""
    from transformers import GenerationConfig

    eos = tokenizer.eos_token_id
    kept = {k: getattr(saved, k) for k in KEPT_SAVED_SETTINGS if getattr(saved, k, None) is not None}
    return GenerationConfig(
        **kept,
        do_sample=False,  # sampling, when asked, is RowSampler's job
        num_beams=s.num_beams or 1,
        num_return_sequences=s.num_return_sequences if s.strategy == "beam" else 1,  # sampling: rows repeated
        early_stopping=s.strategy == "beam",
        repetition_penalty=s.repetition_penalty,
        no_repeat_ngram_size=s.no_repeat_ngram_size,
        max_new_tokens=new,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
        bos_token_id=tokenizer.bos_token_id,
        use_cache=True,
    )


@contextlib.contextmanager
def _only_config(model: PreTrainedModel, gen: Any) -> Iterator[None]:
    """``generate`` fills unset values from ``model.generation_config`` (the saved folder samples with
    top-p 0.95 up to 1,024 tokens) and warns about each clash; swap it for ours during the call (which
    has the saved settings it keeps: ``KEPT_SAVED_SETTINGS``)."""
    saved = model.generation_config
    model.generation_config = gen
    try:
        yield
    finally:
        model.generation_config = saved


def _processors(s: GenerationSettings, seeds: list[int], sep_id: int | None = None) -> Any:
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    procs = LogitsProcessorList()
    if sep_id is not None:
        procs.append(SeparatorLimit(sep_id))  # first: before sampling draws
    if not s.sampling:
        return procs
    if s.temperature != 1.0:
        procs.append(TemperatureLogitsWarper(s.temperature))
    if s.top_k is not None:
        procs.append(TopKLogitsWarper(s.top_k))
    if s.top_p is not None and s.top_p < 1.0:
        procs.append(TopPLogitsWarper(s.top_p))
    procs.append(RowSampler(seeds))
    return procs


def plan_batches(lengths: list[int], context: int, settings: GenerationSettings) -> list[tuple[list[int], int]]:
    """Group prompt indices into batches of similar length, each with its ``max_new_tokens``.

    A prompt whose tokens plus ``max_new_tokens`` overflow the context gets its continuation clipped
    (with a warning) and runs alone, so that clipping one prompt never shortens another. With no
    ``max_new_tokens`` (None), a batch gets all the room its longest prompt leaves, without a warning:
    the batches are runs of prompts sorted by length, so a shorter one loses only its difference to it.
    """
    want = settings.max_new_tokens
    fits, batches = [], []
    for i, n in enumerate(lengths):
        if n >= context:
            raise PromptTooLongError(i, n, context)
        if want is not None and n + want > context:
            batches.append(([i], context - n))
        else:
            fits.append(i)
    if len(batches) == 1:
        (i,), room = batches[0]
        logger.warning(
            "prompt %d: max_new_tokens %d clipped to %d, so that its %d tokens and the continuation fit the "
            "model's context of %d",
            *(i + 1, want, room, lengths[i], context),
        )
    elif batches:  # one line for all, not one per prompt
        rooms = [room for _, room in batches]
        logger.warning(
            "%d of %d prompts: max_new_tokens %d clipped to %d-%d tokens (prompts %s), so that each prompt and its "
            "continuation fit the model's context of %d",
            *(
                len(batches),
                len(lengths),
                want,
                min(rooms),
                max(rooms),
                _numbers([i + 1 for (i,), _ in batches]),
                context,
            ),
        )
    fits.sort(key=lambda i: (-lengths[i], i))
    step = settings.batch_size
    runs = [fits[k : k + step] for k in range(0, len(fits), step)]
    # left padding: a batch's rows all run to the width of its longest prompt (its first) plus the new tokens
    batches[:0] = [(run, want if want is not None else context - lengths[run[0]]) for run in runs]
    return batches


def _numbers(items: list[int], shown: int = 10) -> str:
    """``1, 4, 9`` or ``1, 4, 9, ... (25 in all)``."""
    text = ", ".join(str(i) for i in items[:shown])
    return text if len(items) <= shown else f"{text}, ... ({len(items)} in all)"


@functools.cache
def _byte_of_symbol() -> dict[str, int]:
    """Byte-level BPE's printable stand-in for each byte, inverted: symbol -> byte."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {symbol: byte for byte, symbol in bytes_to_unicode().items()}


def unfinished_char_bytes(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> int:
    """How many bytes at the end of ``ids`` start a UTF-8 character that the tokens never finish.

    A byte-level BPE spells a character its merges never saw (common in Chinese, Japanese, rare
    Cyrillic letters) as 2-4 byte tokens; a continuation cut by ``max_new_tokens`` can end inside one.
    0 when the text ends whole, or for a tokenizer that is not byte-level.
    """
    symbols = _byte_of_symbol()
    data = bytearray()
    for token in tokenizer.convert_ids_to_tokens(ids[-4:]):  # a character is at most 4 bytes
        if token is None or any(c not in symbols for c in token):
            return 0
        data.extend(symbols[c] for c in token)
    for k in range(1, min(4, len(data)) + 1):
        b = data[-k]
        if b & 0xC0 == 0x80:  # a continuation byte: look further back for the lead byte
            continue
        need = 2 if 0xC0 <= b < 0xE0 else 3 if 0xE0 <= b < 0xF0 else 4 if 0xF0 <= b < 0xF8 else 0
        return k if k < need else 0
    return 0


def drop_unfinished_char(tokenizer: PreTrainedTokenizerBase, ids: list[int], text: str) -> str:
    """``text`` (decoded from ``ids``) without the U+FFFD that stands for a character cut off at its end."""
    if text.endswith("\ufffd") and unfinished_char_bytes(tokenizer, ids):
        return text[:-1]
    return text


@contextlib.contextmanager
def _memory_said(settings: GenerationSettings, rows: int, length: int) -> Iterator[None]:
    """Out of memory while generating: one line with the batch that did not fit and what to lower."""
    from domainlm.oom import is_out_of_memory, torch_figures

    try:
        yield
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        figures = torch_figures(err)
        lower = [f"--batch_size (now {settings.batch_size})"] if settings.batch_size > 1 else []
        if settings.num_return_sequences > 1 or (settings.num_beams or 1) > 1:
            lower.append("--num_return_sequences or --num_beams (each is a row of the batch)")
        if settings.max_new_tokens is None:
            lower.append("--max_new_tokens (now: until the context is full)")
        raise UserError(
            f"out of memory generating {rows} row{'s' if rows != 1 else ''} of up to {length} tokens at once"
            f"{f' ({figures})' if figures else ''}; "
            + (f"lower {', or '.join(lower)}" if lower else "the model needs a machine with more memory")
        ) from None


def generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    settings: GenerationSettings,
    seeds: list[int] | None = None,
    progress: bool = True,
) -> list[Generation]:
    """All prompts' continuations, in prompt order (``num_return_sequences`` per prompt, consecutive).

    ``seeds[i]`` is prompt i's seed; by default ``settings.seed + i``.
    """
    import torch
    from tqdm.auto import tqdm

    from domainlm.modeling import context_length

    if not prompts:
        return []
    seeds = seeds if seeds is not None else [settings.seed + i for i in range(len(prompts))]
    # verbose=False: the length check below says what to do about a prompt longer than the context
    encoded = [tokenizer(p, add_special_tokens=False, verbose=False)["input_ids"] for p in prompts]
    for i, ids in enumerate(encoded):
        if not ids:
            raise UserError(f"prompt {i + 1} is empty")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    sep = tokenizer.get_vocab().get(SEP_TOKEN)
    n_ret = settings.num_return_sequences
    results: dict[int, list[Generation]] = {}
    batches = plan_batches([len(e) for e in encoded], context_length(model.config), settings)
    bar = tqdm(total=len(prompts), unit="prompt", desc="generating", disable=not progress)
    for batch, new in batches:
        width = max(len(encoded[i]) for i in batch)
        # beam search returns its n best itself; sampling gets each prompt n times, one row per return
        rows = batch if settings.strategy == "beam" else [i for i in batch for _ in range(n_ret)]
        ids = torch.tensor([[pad] * (width - len(encoded[i])) + encoded[i] for i in rows])
        mask = torch.tensor([[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i in rows])
        row_seeds = [draw_seed(seeds[i], r) for i in batch for r in range(n_ret)]
        gen = _generation_config(tokenizer, settings, new, saved=model.generation_config)
        with torch.inference_mode(), _only_config(model, gen), _memory_said(settings, len(rows), width + new):
            out = model.generate(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                generation_config=gen,
                logits_processor=_processors(settings, row_seeds, sep),
            )
        for k, i in enumerate(batch):
            results[i] = []
            for r in range(n_ret):
                tokens = out[k * n_ret + r, width:].tolist()
                stopped = eos in tokens
                body = tokens[: tokens.index(eos)] if stopped else tokens
                text = tokenizer.decode(body, skip_special_tokens=True)
                if not stopped:
                    text = drop_unfinished_char(tokenizer, body, text)
                results[i].append(Generation(i, r, seeds[i], text, len(body) + stopped, stopped, new))
        bar.update(len(batch))
    bar.close()
    return [g for i in range(len(prompts)) for g in results[i]]
