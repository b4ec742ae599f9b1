"""From data files to training sequences.

Two ways to turn rows into sequences:

- ``records``: one row, one sequence: ``tokens(row) + [eos]``, padded per batch with a pad token
  that the loss ignores. For ``title<|SEP|>keywords<|SEP|>text`` rows, where a record cut in half
  would teach the model broken postings. Rows longer than ``block_size`` are dropped (counted and
  logged), truncated, or refused, as ``--overlong`` says.
- ``concat``: rows joined with end-of-text and cut into ``block_size`` chunks, as upstream run_clm
  does for plain corpora; a corpus smaller than one block gives one shorter block instead of an error.

``auto`` (the default) picks ``records`` when every sampled row has the record layout, else ``concat``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domainlm.errors import UserError
from domainlm.tables import iter_csv, read_table, require_columns
from domainlm.template import is_record

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict
    from transformers import PreTrainedTokenizerBase, TrainingArguments

    from domainlm.args import DataArguments

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


def check_data_file(path: str, text_column: str, flag: str) -> int:
    """Read the file once with the strict reader; returns the number of rows with text.

    Malformed CSV, wrong encoding, a missing column or a file without text end in a ``UserError``
    that names the file and the line.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{flag} {path}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".txt":
        from domainlm.tables import read_text

        n = sum(1 for line in read_text(p).splitlines() if line.strip())
    elif suffix == ".csv":
        header, rows = iter_csv(p)
        require_columns(p, header, {text_column: "--text_column"})
        n = sum(1 for _, row in rows if row[text_column].strip())
    else:
        rows = read_table(p, {text_column: "--text_column"})
        n = sum(1 for row in rows if isinstance(row.get(text_column), str) and row[text_column].strip())
    if n == 0:
        raise UserError(f"{flag} {path}: no row has text in column {text_column!r}")
    return n


def load_text_dataset(
    path: str, text_column: str = "text", keep_linebreaks: bool = True, cache_dir: str | None = None
) -> Dataset:
    """One file as a ``Dataset`` with a single ``text`` column: line endings normalised, empty rows dropped.

    This is the loader training uses; data preparation reads its own output back through it.
    """
    from datasets import Features, Value, load_dataset

    suffix = Path(path).suffix.lower()
    builders = {".csv": "csv", ".json": "json", ".jsonl": "json", ".txt": "text"}
    if suffix not in builders:
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'}; use one of {', '.join(builders)}")
    builder = builders[suffix]
    kwargs: dict[str, Any] = {"keep_linebreaks": keep_linebreaks} if builder == "text" else {}
    if builder == "csv":
        # Keep every field a string: "NA", "null" or "1.0" in a posting are text, not missing values.
        kwargs.update(keep_default_na=False, usecols=[text_column], features=Features({text_column: Value("string")}))
    ds = load_dataset(builder, data_files={"data": path}, split="data", cache_dir=cache_dir, **kwargs)
    if builder != "text":
        ds = ds.select_columns([text_column])
        if text_column != "text":
            ds = ds.rename_column(text_column, "text")
    before = len(ds)
    ds = ds.map(_normalise_newlines, batched=True, desc="normalising line endings")
    ds = ds.filter(lambda b: [bool(t and t.strip()) for t in b["text"]], batched=True)
    if len(ds) < before:
        logger.warning("%s: skipped %d empty rows", path, before - len(ds))
    return ds


def _normalise_newlines(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {
        "text": [t.replace("\r\r\n", "\n").replace("\r\n", "\n").replace("\r", "\n") if t else t for t in batch["text"]]
    }


def load_splits(data_args: DataArguments, training_args: TrainingArguments) -> DatasetDict:
    """``train`` and ``validation`` splits (validation held out of train when no file is given)."""
    from datasets import DatasetDict

    splits: dict[str, Dataset] = {}
    for name, flag in (("train", "train_file"), ("validation", "validation_file")):
        path = getattr(data_args, flag)
        if path:
            check_data_file(path, data_args.text_column, f"--{flag}")
            splits[name] = load_text_dataset(path, data_args.text_column, data_args.keep_linebreaks)
    if "validation" not in splits and "train" in splits and training_args.do_eval:
        if data_args.validation_split_percentage == 0 or len(splits["train"]) < 2:
            raise UserError("--do_eval needs --validation_file, or --validation_split_percentage above 0 and 2+ rows")
        parts = splits["train"].train_test_split(
            test_size=data_args.validation_split_percentage / 100, seed=training_args.seed
        )
        splits["train"], splits["validation"] = parts["train"], parts["test"]
    return DatasetDict(splits)


def resolve_sequence_mode(mode: str, texts: Sequence[str], sample: int = 200) -> str:
    """``auto`` -> ``records`` when each of the first ``sample`` rows is a record, else ``concat``."""
    if mode != "auto":
        return mode
    head = list(texts[:sample])
    return "records" if head and all(is_record(t) for t in head) else "concat"


def tokenize_records(
    ds: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    overlong: str = "drop",
    num_proc: int | None = None,
    load_from_cache_file: bool = True,
) -> Dataset:
    """One sequence per row: ``tokens + [eos]``. Rows over ``block_size`` tokens: drop/truncate/error."""
    eos = tokenizer.eos_token_id

    def encode(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
        return {"input_ids": [[*x, eos] for x in ids]}

    out = ds.map(
        encode,
        batched=True,
        remove_columns=ds.column_names,
        num_proc=num_proc,
        load_from_cache_file=load_from_cache_file,
        desc="tokenising records",
    )
    lengths = [len(x) for x in out["input_ids"]]
    too_long = [i for i, n in enumerate(lengths) if n > block_size]
    if not too_long:
        return out
    if overlong == "error":
        i = too_long[0]
        raise UserError(
            f"row {i + 1} is {lengths[i]} tokens, over --block_size {block_size} ({len(too_long)} such rows); "
            "raise --block_size, filter the data (prepare_jobs.py --max_tokens), or pass --overlong drop"
        )
    if overlong == "truncate":
        logger.warning("truncating %d of %d rows to %d tokens", len(too_long), len(out), block_size)
        return out.map(lambda b: {"input_ids": [x[:block_size] for x in b["input_ids"]]}, batched=True)
    keep = sorted(set(range(len(out))) - set(too_long))
    logger.warning(
        "dropped %d of %d rows longer than %d tokens (pass --overlong truncate to keep them cut)",
        len(too_long),
        len(out),
        block_size,
    )
    if not keep:
        raise UserError(f"every row is longer than --block_size {block_size}; raise it or shorten the rows")
    return out.select(keep)


def concat_and_chunk(
    ds: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    num_proc: int | None = None,
    load_from_cache_file: bool = True,
) -> Dataset:
    """Rows joined with end-of-text and cut into ``block_size`` chunks.

    Within each map batch the tail shorter than a block is dropped, except when the batch holds less
    than one block: then it is kept as one shorter sequence, so small corpora still train.
    """
    eos = tokenizer.eos_token_id

    def chunk(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        flat: list[int] = []
        for ids in tokenizer(batch["text"], add_special_tokens=False)["input_ids"]:
            flat.extend(ids)
            flat.append(eos)
        if len(flat) < block_size:
            return {"input_ids": [flat]}
        n = len(flat) // block_size * block_size
        return {"input_ids": [flat[i : i + block_size] for i in range(0, n, block_size)]}

    return ds.map(
        chunk,
        batched=True,
        batch_size=1000,
        remove_columns=ds.column_names,
        num_proc=num_proc,
        load_from_cache_file=load_from_cache_file,
        desc=f"concatenating and cutting into blocks of {block_size}",
    )


def build_sequences(
    ds: Dataset, tokenizer: PreTrainedTokenizerBase, mode: str, block_size: int, data_args: DataArguments
) -> Dataset:
    cache = not data_args.overwrite_cache
    workers = data_args.preprocessing_num_workers
    if mode == "records":
        return tokenize_records(ds, tokenizer, block_size, data_args.overlong or "drop", workers, cache)
    if mode == "concat":
        return concat_and_chunk(ds, tokenizer, block_size, workers, cache)
    raise UserError(f"--sequence_mode {mode}: use auto, records or concat")


@dataclass
class CausalLMCollator:
    """Pads a batch to its longest sequence; pad positions get attention 0 and label -100.

    Labels are the input ids (the model shifts them) unless a feature brings its own ``labels``.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
        for i, f in enumerate(features):
            x = torch.as_tensor(f["input_ids"], dtype=torch.long)
            n = len(x)
            ids[i, :n] = x
            mask[i, :n] = 1
            labels[i, :n] = torch.as_tensor(f["labels"], dtype=torch.long) if "labels" in f else x
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
