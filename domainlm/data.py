"""From data files to training sequences.

Two ways to turn rows into sequences:

- ``records``: one row, one sequence: ``tokens(row) + [eos]``, padded per batch with a pad token
  that the loss ignores. For ``title<|SEP|>keywords<|SEP|>text`` rows, where a record cut in half
  would teach the model broken postings. Rows longer than ``block_size`` are dropped (counted and
  logged), truncated, or refused, as ``--overlong`` says.
- ``packed``: records as above, several to a row of at most ``block_size`` tokens, each with its own
  position ids (0, 1, ...) and no attention mask, so that the model's causal mask is block-diagonal:
  no record attends to another, and almost no compute goes to padding.
- ``concat``: rows joined with end-of-text and cut into ``block_size`` chunks, as upstream run_clm
  does for plain corpora; a corpus smaller than one block gives one shorter block instead of an error.

``auto`` (the default) picks ``records`` when every sampled row has the record layout, else ``concat``.
With ``--loss_on body`` the title and keywords of a record are masked out of the labels (its
``<|SEP|>`` tokens too); the body and the end-of-text carry the loss.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domainlm.errors import UserError, first_line
from domainlm.tables import iter_csv, read_table, require_columns, row_at
from domainlm.template import SEP_TOKEN, is_record

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict
    from transformers import PreTrainedTokenizerBase, TrainingArguments

    from domainlm.args import DataArguments

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
DROP_HINT = "pass --overlong truncate to keep them cut"  # what run_clm.py offers for rows over the block
LINE_COLUMN = "_line"  # where a row starts in its file (``text_row_lines``), for messages about the row


def check_data_file(path: str, text_column: str, flag: str) -> int:
    """Read the file once with the strict reader; returns the number of rows with text.

    Malformed CSV, wrong encoding, a missing column, a value that is not text or a file without text end
    in a ``UserError`` that names the file and the line.
    """
    return len(text_row_lines(path, text_column, flag))


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"true/false ({json.dumps(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def text_row_lines(path: str, text_column: str, flag: str) -> list[int]:
    """Where each row with text starts in the file, in order: the line (CSV, JSON lines, text) or the
    position in the list (a .json file), as the checks of ``check_data_file`` count them."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{flag} {path}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".txt":
        from domainlm.tables import read_text

        lines = [i for i, line in enumerate(read_text(p).splitlines(), start=1) if line.strip()]
    elif suffix == ".csv":
        header, rows = iter_csv(p, strip_header=False)  # as the training loader reads them
        padded = [h for h in header if h != h.strip() == text_column]
        if padded and text_column not in header:
            raise UserError(
                f"{path}: line 1: the column name {padded[0]!r} has spaces around it, which the training loader "
                "keeps; remove them from the header"
            )
        require_columns(p, header, {text_column: "--text_column"})
        lines = [line for line, row in rows if row[text_column].strip()]
    else:
        lines = []
        for row in read_table(p, {text_column: "--text_column"}):
            value = row.get(text_column)
            if value is not None and not isinstance(value, str):
                raise UserError(
                    f"{path}: {_position(path, row['_line'])}: column {text_column!r} is {_json_kind(value)}; "
                    'it must be text, a JSON string such as "..."'
                )
            if value and value.strip():
                lines.append(row["_line"])
    if not lines:
        raise UserError(f"{flag} {path}: no row has text in column {text_column!r}")
    return lines


def _position(path: str, line: int) -> str:
    """``line N``, or ``row N`` for a .json file (a list: its rows have no lines of their own)."""
    return f"{'row' if Path(path).suffix.lower() == '.json' else 'line'} {line}"


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """Hide the datasets and transformers libraries' progress bars inside the block (a script's own summary
    says enough; ``run_clm.py --disable_tqdm true`` asks for no bars at all)."""
    import datasets
    from transformers.utils import logging as hf_logging

    were_off = datasets.are_progress_bars_disabled(), not hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not were_off[0]:
            datasets.enable_progress_bars()
        if not were_off[1]:
            hf_logging.enable_progress_bar()


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
    return clean_rows(ds, path)


def clean_rows(ds: Dataset, where: str, numbered: bool = False) -> Dataset:
    """A ``text`` column's rows as training reads them, whatever they come from: line endings normalised,
    empty rows dropped (logged, ``where`` naming them). ``numbered`` adds each row's position before the
    drop (from 1) as ``LINE_COLUMN``, for messages about the row."""
    before = len(ds)
    normalise = _numbered if numbered else _normalise_newlines
    ds = ds.map(normalise, batched=True, with_indices=numbered, desc="normalising line endings")
    ds = ds.filter(lambda b: [bool(t and t.strip()) for t in b["text"]], batched=True)
    if len(ds) < before:
        logger.warning("%s: skipped %d empty rows", where, before - len(ds))
    return ds


def _normalise_newlines(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {
        "text": [t.replace("\r\r\n", "\n").replace("\r\n", "\n").replace("\r", "\n") if t else t for t in batch["text"]]
    }


def _numbered(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
    return {**_normalise_newlines(batch), LINE_COLUMN: [i + 1 for i in indices]}


# --- --dataset_name: upstream run_clm's datasets, as rows of text -------------------------------------------

DATASET_HINT = (
    "pass a local folder of data files (train.csv, validation.csv, ...) or one written by save_to_disk, or --train_file"
)


def dataset_source(data_args: DataArguments, split: str) -> str:
    """A split of ``--dataset_name`` in words, for messages and the model card: ``wikitext
    (wikitext-2-raw-v1), split train``."""
    config = f" ({data_args.dataset_config_name})" if data_args.dataset_config_name else ""
    return f"{data_args.dataset_name}{config}, split {split}"


def saved_to_disk(path: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` (``load_from_disk`` reads
    it; ``load_dataset`` refuses the first and would misread the second)."""
    from datasets import config

    return (path / config.DATASETDICT_JSON_FILENAME).is_file() or (
        (path / config.DATASET_STATE_JSON_FILENAME).is_file() and (path / config.DATASET_INFO_FILENAME).is_file()
    )


def load_named_dataset(
    name: str,
    config_name: str | None = None,
    token: str | bool | None = None,
    keep_linebreaks: bool = True,
    cache_dir: str | None = None,
) -> DatasetDict:
    """``--dataset_name``: a folder written by ``save_to_disk``, a local folder of data files, or a hub dataset
    (``token``: for a private or gated one; ``cache_dir``: where hub downloads go), as a ``DatasetDict`` (a saved single ``Dataset`` is its ``train``
    split). A hub name that cannot be had is one line, without a minute of retries (``domainlm.hub``)."""
    from datasets import load_from_disk

    flag = f"--dataset_name {name}"
    path = Path(name).expanduser()
    if path.is_dir() and saved_to_disk(path):
        if config_name:
            raise UserError(
                f"--dataset_config_name {config_name}: {name} was written by save_to_disk and has no "
                "configurations; leave it out"
            )
        return _as_dict(load_from_disk(str(path)))
    if path.is_dir():
        from datasets.exceptions import DatasetGenerationError

        try:
            loaded = _load_dataset(
                str(path), config_name, token, cache_dir=cache_dir, **_as_train_file(path, keep_linebreaks)
            )
        except (OSError, ValueError, DatasetGenerationError) as err:  # no data files, no such config, a bad file
            why = err.__cause__ if isinstance(err, DatasetGenerationError) and err.__cause__ else err  # the parser's
            raise UserError(f"{flag}: the folder cannot be loaded as a dataset ({first_line(why)})") from None
        return _as_dict(loaded)
    from domainlm.hub import load_by_name
    from domainlm.tokenizer import looks_like_path

    if looks_like_path(name):
        raise UserError(f"{flag}: no such folder")

    def load(local_only: bool) -> Any:
        return _load_dataset(name, config_name, token, local_only=local_only, cache_dir=cache_dir)

    return _as_dict(load_by_name(load, name, "--dataset_name", "dataset", DATASET_HINT, hub="hub"))


def _load_dataset(
    path: str, config_name: str | None, token: str | bool | None, local_only: bool = False, **kwargs: Any
) -> Any:
    """``datasets.load_dataset``; ``local_only``: from the local cache alone, as under ``HF_HUB_OFFLINE=1``
    (datasets reads that setting once, at import, into ``datasets.config``)."""
    from datasets import config, load_dataset

    if not local_only:
        return load_dataset(path, config_name, token=token, **kwargs)
    was, config.HF_HUB_OFFLINE = config.HF_HUB_OFFLINE, True
    try:
        return load_dataset(path, config_name, token=token, **kwargs)
    finally:
        config.HF_HUB_OFFLINE = was


def _as_train_file(folder: Path, keep_linebreaks: bool) -> dict[str, Any]:
    """A folder of CSV files alone, or of text files alone, is read as ``--train_file`` reads one: "NA",
    "null" or "" in a CSV text are text, not missing values; a text file's lines keep their line breaks
    (``--keep_linebreaks``)."""
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name != "README.md"]
    suffixes = {p.suffix.lower() for p in files}
    if suffixes == {".csv"}:
        return {"keep_default_na": False}
    return {"keep_linebreaks": keep_linebreaks} if suffixes == {".txt"} else {}


def _as_dict(loaded: Any) -> DatasetDict:
    from datasets import DatasetDict

    return loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})


def _kind(feature: Any) -> str:
    """A column's type in words: ``int64``, ``a list``, ``a class label``..."""
    from datasets import ClassLabel, Value

    if isinstance(feature, Value):
        return feature.dtype
    if isinstance(feature, ClassLabel):
        return "a class label"
    return "a list" if type(feature).__name__ in ("List", "LargeList", "Sequence") else type(feature).__name__


def dataset_text_split(ds: Dataset, data_args: DataArguments, split: str) -> Dataset:
    """One split of ``--dataset_name`` as a ``text`` column (plus ``LINE_COLUMN``, the row's position in the
    split), through the same cleaning as a file's rows (``clean_rows``)."""
    from datasets import Value

    column, where = data_args.text_column, dataset_source(data_args, split)
    if column not in ds.column_names:
        raise UserError(
            f"--dataset_name {data_args.dataset_name}: split {split} has no column {column!r} (--text_column); "
            f"its columns: {', '.join(ds.column_names)}"
        )
    feature = ds.features[column]
    if not (isinstance(feature, Value) and feature.dtype in ("string", "large_string")):
        raise UserError(
            f"--dataset_name {data_args.dataset_name}: column {column!r} of split {split} is {_kind(feature)}, not "
            "text; pass --text_column with a text column"
        )
    ds = ds.select_columns([column])
    if column != "text":
        ds = ds.rename_column(column, "text")
    ds = clean_rows(ds, where, numbered=True)
    if len(ds) == 0:
        raise UserError(f"--dataset_name {data_args.dataset_name}: split {split} has no row with text in {column!r}")
    return ds


def load_dataset_splits(
    data_args: DataArguments, training_args: TrainingArguments, token: str | None = None, cache_dir: str | None = None
) -> dict[str, Dataset]:
    """The ``train`` and ``validation`` splits of ``--dataset_name`` that this run reads, cleaned."""
    loaded = load_named_dataset(
        data_args.dataset_name, data_args.dataset_config_name, token, data_args.keep_linebreaks, cache_dir
    )
    name = data_args.dataset_name
    if training_args.do_train and "train" not in loaded:
        raise UserError(
            f"--dataset_name {name}: --do_train needs a train split, and it has {', '.join(loaded) or 'none'}"
        )
    if training_args.do_eval and not ({"train", "validation"} & set(loaded)):
        raise UserError(
            f"--dataset_name {name}: --do_eval needs a validation split (or a train split to hold one out of), "
            f"and it has {', '.join(loaded) or 'none'}"
        )
    # the train split for evaluation alone only to hold out of (load_splits), as a --train_file would be
    hold_out = training_args.do_eval and "validation" not in loaded
    wanted = ["train"] if training_args.do_train or hold_out else []
    wanted += ["validation"] if training_args.do_eval else []
    return {split: dataset_text_split(loaded[split], data_args, split) for split in wanted if split in loaded}


def split_sources(data_args: DataArguments, raw: DatasetDict) -> dict[str, str | None]:
    """Where each split's rows come from, for messages and the model card: a file, or a split of
    ``--dataset_name``. A validation split held out of the training rows comes from theirs."""
    if data_args.dataset_name:
        held_out = "validation" in raw and raw["validation"].info.description == HELD_OUT
        return {
            "train": dataset_source(data_args, "train"),
            "validation": dataset_source(data_args, "train" if held_out else "validation"),
        }
    return {"train": data_args.train_file, "validation": data_args.validation_file or data_args.train_file}


HELD_OUT = "held out of the train split"  # the info.description of such a validation split (``split_sources``)


def load_splits(
    data_args: DataArguments, training_args: TrainingArguments, token: str | None = None, cache_dir: str | None = None
) -> DatasetDict:
    """``train`` and ``validation`` splits (validation held out of train when no file is given), from the
    files or from ``--dataset_name`` (``token`` and ``cache_dir``: run_clm.py's ``--token`` and ``--cache_dir``,
    for a hub dataset)."""
    from datasets import DatasetDict

    splits: dict[str, Dataset] = {}
    if data_args.dataset_name:
        splits = load_dataset_splits(data_args, training_args, token, cache_dir)
    for name, flag in (("train", "train_file"), ("validation", "validation_file")):
        path = getattr(data_args, flag)
        if path:
            lines = text_row_lines(path, data_args.text_column, f"--{flag}")
            ds = load_text_dataset(path, data_args.text_column, data_args.keep_linebreaks)
            if len(ds) == len(lines):  # the same rows, as both readers skip rows without text
                ds = ds.add_column(LINE_COLUMN, lines)
            splits[name] = ds
    if "validation" not in splits and "train" in splits and training_args.do_eval:
        if data_args.validation_split_percentage == 0 or len(splits["train"]) < 2:
            given = "a validation split in --dataset_name" if data_args.dataset_name else "--validation_file"
            raise UserError(f"--do_eval needs {given}, or --validation_split_percentage above 0 and 2+ rows")
        parts = splits["train"].train_test_split(
            test_size=data_args.validation_split_percentage / 100, seed=training_args.seed
        )
        splits["train"], splits["validation"] = parts["train"], parts["test"]
        splits["validation"].info.description = HELD_OUT  # its own info: the train part's is another object
    return DatasetDict(splits)


def resolve_sequence_mode(mode: str, texts: Sequence[str], sample: int = 200) -> str:
    """``auto`` -> ``records`` when each of the first ``sample`` rows is a record, else ``concat``."""
    if mode != "auto":
        return mode
    head = list(texts[:sample])
    return "records" if head and all(is_record(t) for t in head) else "concat"


@dataclass
class RecordEncoder:
    """``text -> (input_ids, labels)`` for one record: ``tokens + [eos]``, prompt masked if ``body_only``."""

    tokenizer: PreTrainedTokenizerBase
    body_only: bool = False

    def __post_init__(self) -> None:
        self.eos = self.tokenizer.eos_token_id
        self.sep = self.tokenizer.get_vocab().get(SEP_TOKEN)
        if self.body_only and self.sep is None:
            raise UserError(f"--loss_on body needs {SEP_TOKEN} in the tokenizer's vocabulary")

    def labels_for(self, ids: list[int]) -> list[int]:
        labels = list(ids)
        if self.body_only:
            seps = [i for i, t in enumerate(ids) if t == self.sep][:2]
            if len(seps) == 2:
                labels[: seps[1] + 1] = [IGNORE_INDEX] * (seps[1] + 1)
        return labels

    def encode(self, texts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        # verbose=False: rows over the context are dropped, cut or refused with a message of our own
        ids = [[*x, self.eos] for x in self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]]
        return ids, [self.labels_for(x) for x in ids]


def tokenize_records(
    ds: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    overlong: str = "drop",
    num_proc: int | None = None,
    load_from_cache_file: bool = True,
    body_only: bool = False,
    keep_text: bool = False,
    source: str | None = None,
    drop_hint: str = DROP_HINT,
) -> Dataset:
    """One sequence per row: ``input_ids`` = ``tokens + [eos]`` and ``labels``.

    Rows over ``block_size`` tokens are dropped, truncated or an error (``overlong``). ``keep_text``
    keeps the ``text`` column (keyword shuffling re-encodes rows each epoch). ``source``, the file the
    rows come from, and their ``_line`` column (``load_splits``) name the rows in messages; ``drop_hint``
    ends the message about dropped rows (what the caller offers instead).
    """
    encoder = RecordEncoder(tokenizer, body_only)

    def encode(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        ids, labels = encoder.encode(batch["text"])
        return {"input_ids": ids, "labels": labels}

    out = ds.map(
        encode,
        batched=True,
        remove_columns=[c for c in ds.column_names if not (keep_text and c == "text")],
        num_proc=num_proc,
        load_from_cache_file=load_from_cache_file,
        desc="tokenising records",
    )
    lengths = [len(x) for x in out["input_ids"]]
    too_long = [i for i, n in enumerate(lengths) if n > block_size]
    if not too_long:
        return out
    prefix = f"{source}: " if source else ""
    rows = f"{len(too_long)} such row{'s' if len(too_long) != 1 else ''}"
    if overlong == "error":
        i = too_long[0]
        row = row_at(source, ds[i][LINE_COLUMN]) if source and LINE_COLUMN in ds.column_names else f"row {i + 1}"
        raise UserError(
            f"{prefix}{row} is {lengths[i]} tokens, over --block_size {block_size} ({rows}); "
            "raise --block_size, filter the data (prepare_jobs.py --max_tokens), or pass --overlong drop"
        )
    if overlong == "truncate":
        logger.warning("%struncating %d of %d rows to %d tokens", prefix, len(too_long), len(out), block_size)
        return out.map(
            lambda b: {
                "input_ids": [x[:block_size] for x in b["input_ids"]],
                "labels": [x[:block_size] for x in b["labels"]],
            },
            batched=True,
        )
    keep = sorted(set(range(len(out))) - set(too_long))
    logger.warning(
        "%sdropped %d of %d rows longer than %d tokens (%s)",
        prefix,
        len(too_long),
        len(out),
        block_size,
        drop_hint,
    )
    if not keep:
        raise UserError(f"{prefix}every row is longer than --block_size {block_size}; raise it or shorten the rows")
    return out.select(keep)


def pack_lengths(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices grouped into bins of total length <= ``capacity``: best-fit decreasing, deterministic.

    Longest first, each into the fullest bin it still fits (ties: the earliest bin). Bins come out
    in creation order; within a bin, indices in the order they were placed.
    """
    import bisect

    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (remaining capacity, bin id)
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"sequence {i} has {n} tokens, over the capacity {capacity}")
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            room, b = free.pop(k)
        else:
            room, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if room - n > 0:
            bisect.insort(free, (room - n, b))
    return bins


def pack_records(ds: Dataset, block_size: int) -> Dataset:
    """Tokenised records packed into rows with per-record ``position_ids``.

    The first label of every record is ignored: it would be predicted from the previous record's end.
    A ``text`` column becomes ``texts`` (the records of each row, in order).

    The rows are built from the Arrow columns in bulk (take, flatten, offsets): reading every record
    into Python lists took 1.9 GB and 25 s for 10.6 million tokens (50 MB of text), this 0.6 GB and 1.4 s.
    """
    import itertools

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasets import Dataset as ArrowDataset
    from datasets.fingerprint import Hasher
    from datasets.table import InMemoryTable

    table = ds.with_format("arrow")[:]  # the rows as selected, Arrow columns: no Python objects per token
    lengths = pc.list_value_length(table.column("input_ids")).to_numpy().astype(np.int64)
    bins = pack_lengths(lengths.tolist(), block_size)
    take = np.fromiter(itertools.chain.from_iterable(bins), dtype=np.int64, count=len(lengths))
    record_lengths = lengths[take]
    record_starts = np.concatenate([[0], np.cumsum(record_lengths)])  # token offsets of the records, bin order
    bin_sizes = np.fromiter((len(b) for b in bins), dtype=np.int64, count=len(bins))
    bin_records = np.concatenate([[0], np.cumsum(bin_sizes)])  # record offsets of the rows
    row_offsets = pa.array(record_starts[bin_records], pa.int32())

    def records_in_bin_order(name: str) -> pa.Array:
        return pc.list_flatten(table.column(name).take(take).combine_chunks())

    labels = records_in_bin_order("labels").to_numpy().copy()
    labels[record_starts[:-1][record_lengths > 0]] = IGNORE_INDEX
    n_tokens = int(record_starts[-1])
    positions = np.arange(n_tokens, dtype=np.int64)
    positions -= np.repeat(record_starts[:-1], record_lengths)
    columns = {
        "input_ids": pa.ListArray.from_arrays(row_offsets, records_in_bin_order("input_ids")),
        "labels": pa.ListArray.from_arrays(row_offsets, pa.array(labels)),
        "position_ids": pa.ListArray.from_arrays(row_offsets, pa.array(positions)),
    }
    del labels, positions
    if "text" in ds.column_names:
        texts = table.column("text").take(take).combine_chunks()
        columns["texts"] = pa.ListArray.from_arrays(pa.array(bin_records, pa.int32()), texts)
    # The fingerprint from the input's: hashing the packed table instead pickled all of it (4x its size).
    fingerprint = Hasher.hash(("pack_records", ds._fingerprint, block_size))
    packed = ArrowDataset(InMemoryTable(pa.table(columns)), fingerprint=fingerprint)
    logger.info(
        "packed %d records into %d rows of up to %d tokens (%.1f%% filled)",
        len(lengths),
        len(packed),
        block_size,
        100 * n_tokens / max(1, len(packed) * block_size),
    )
    return packed


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
        # verbose=False: long texts are what is cut into blocks here, not an error
        for ids in tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"]:
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
    ds: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    mode: str,
    block_size: int,
    data_args: DataArguments,
    source: str | None = None,
) -> Dataset:
    """The split's training sequences; ``source``, the file its rows come from, is named in messages."""
    cache = not data_args.overwrite_cache
    workers = data_args.preprocessing_num_workers
    body_only = data_args.loss_on == "body"
    keep_text = data_args.shuffle_keywords
    if mode in ("records", "packed"):
        ds = tokenize_records(
            ds, tokenizer, block_size, data_args.overlong, workers, cache, body_only, keep_text, source
        )
        return pack_records(ds, block_size) if mode == "packed" else ds
    if mode == "concat":
        if body_only or keep_text:
            flags = " and ".join(
                f for f, on in (("--loss_on body", body_only), ("--shuffle_keywords", keep_text)) if on
            )
            need = "need" if body_only and keep_text else "needs"
            raise UserError(f"{flags} {need} record rows (--sequence_mode records/packed)")
        return concat_and_chunk(ds, tokenizer, block_size, workers, cache)
    raise UserError(f"--sequence_mode {mode}: use auto, records, packed or concat")


@dataclass
class CausalLMCollator:
    """Pads a batch to its longest sequence; pad positions get label -100.

    Plain rows get an attention mask (0 on pads). Packed rows (with ``position_ids``) get none: the
    model derives the block-diagonal causal mask from where the position ids restart, and the pad
    tail forms its own segment. Labels are the input ids unless a feature brings its own ``labels``.
    ``shuffler``, when set, reorders record keywords before encoding (see ``keyword_shuffle``).
    ``flatten`` joins a packed batch's rows end to end into one row, so the pad tails of rows shorter
    than the longest are not computed at all (for attention that runs per record: ``sdpa_packed`` and
    FlashAttention's varlen kernel; the mask path would build one square over the whole batch).
    ``flash_varlen`` adds FlashAttention's varlen arguments to packed batches (``flash_varlen_kwargs``).
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    shuffler: Any = None
    flash_varlen: bool = False
    flatten: bool = False

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        if self.shuffler is not None:
            features = self.shuffler(features)
        packed = "position_ids" in features[0]
        if packed and self.flatten:
            features = [
                {
                    "input_ids": [t for f in features for t in f["input_ids"]],
                    "labels": [t for f in features for t in f.get("labels", f["input_ids"])],
                    "position_ids": [t for f in features for t in f["position_ids"]],
                }
            ]
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
        positions = torch.arange(longest).repeat(len(features), 1) if packed else None
        for i, f in enumerate(features):
            x = torch.as_tensor(f["input_ids"], dtype=torch.long)
            n = len(x)
            ids[i, :n] = x
            mask[i, :n] = 1
            labels[i, :n] = torch.as_tensor(f["labels"], dtype=torch.long) if "labels" in f else x
            if packed:
                positions[i, :n] = torch.as_tensor(f["position_ids"], dtype=torch.long)
                positions[i, n:] = torch.arange(longest - n)
        if packed:
            batch = {"input_ids": ids, "labels": labels, "position_ids": positions}
            if self.flash_varlen:
                batch.update(flash_varlen_kwargs(positions))
            return batch
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def flash_varlen_kwargs(position_ids: Any) -> dict[str, Any]:
    """FlashAttention's varlen arguments for a packed batch: its rows end to end, cut where positions restart.

    transformers' flash path finds records from ``position_ids`` only in a batch of one row; in a
    batch of several it would run each row as one causal sequence, records attending to each other.
    Given ``cu_seq_lens_q/k`` and ``max_length_q/k`` it views the rows end to end and runs one varlen
    call in which every record (and every pad tail) is its own causal sequence. A row's first token
    starts a record and carries no label, so nothing is learnt across the row boundary.
    """
    import torch

    flat = position_ids.reshape(-1)
    starts = (flat == 0).nonzero().view(-1)
    cu_seq_lens = torch.cat([starts, torch.tensor([flat.numel()])]).to(torch.int32)
    longest = int(cu_seq_lens.diff().max())
    return {
        "cu_seq_lens_q": cu_seq_lens,
        "cu_seq_lens_k": cu_seq_lens,
        "max_length_q": longest,
        "max_length_k": longest,
    }
