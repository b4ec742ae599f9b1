"""Raw job postings to training rows ``title<|SEP|>kw1, kw2<|SEP|>text``.

Load (pickle of plain data, CSV, JSON/JSONL, parquet) -> clean -> drop duplicates -> keywords
(kept when present, extracted by MMR when absent or with ``--reextract``) -> length filter (postings
outside the range are dropped, never truncated) -> split with no posting in both -> write
``train.csv``, ``validation.csv`` and ``prepare_stats.json``.
"""

from __future__ import annotations

import logging
import random
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from domainlm.cleaning import clean_text, dedupe_key
from domainlm.errors import UserError
from domainlm.template import clean_keywords, clean_title, format_record

logger = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("text", "title", "keywords")


@dataclass
class PrepareArguments:
    input: str = field(metadata={"help": "Raw postings: .pkl/.pickle (plain data only), .csv, .json, .jsonl, .parquet"})
    output_dir: str = field(metadata={"help": "Where train.csv, validation.csv and prepare_stats.json go."})
    title_column: str = field(default="title", metadata={"help": "Column with the job title."})
    text_column: str = field(default="text", metadata={"help": "Column with the posting text."})
    keywords_column: str = field(default="keywords", metadata={"help": "Column with keywords (optional)."})
    reextract: bool = field(default=False, metadata={"help": "Extract keywords even where the data has them."})
    keyword_backend: Literal["tfidf"] = field(default="tfidf", metadata={"help": "How keywords are extracted."})
    top_n: int = field(default=10, metadata={"help": "At most this many keywords per posting."})
    ngram_min: int = field(default=1, metadata={"help": "Shortest keyphrase, in words."})
    ngram_max: int = field(default=3, metadata={"help": "Longest keyphrase, in words."})
    diversity: float = field(default=0.5, metadata={"help": "MMR diversity: 0 = most relevant, 1 = most varied."})
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

    def __post_init__(self) -> None:
        if not 0 <= self.validation_fraction < 1:
            raise UserError("--validation_fraction must be in [0, 1)")
        if not 0 <= self.diversity <= 1:
            raise UserError("--diversity must be in [0, 1]")
        if self.ngram_min < 1 or self.ngram_max < self.ngram_min:
            raise UserError("--ngram_min/--ngram_max: need 1 <= ngram_min <= ngram_max")
        if self.length_unit == "tokens" and self.tokenizer is None and (self.max_tokens or self.min_tokens):
            raise UserError("a token length filter needs --tokenizer DIR (or pass --length_unit words)")


def load_postings(args: PrepareArguments) -> list[dict[str, Any]]:
    """Rows with ``title``, ``text``, ``keywords`` (list or None) and ``_line``, from any input format."""
    from domainlm.tables import read_table, rows_from_columns

    path = Path(args.input)
    wanted = {args.title_column: "--title_column", args.text_column: "--text_column"}
    if path.suffix.lower() in (".pkl", ".pickle"):
        from domainlm.pickles import load_plain_pickle
        from domainlm.tables import require_columns

        obj = load_plain_pickle(path)
        if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
            rows = rows_from_columns(obj)
        elif isinstance(obj, list) and all(isinstance(r, dict) for r in obj):
            rows = [{**r, "_line": i} for i, r in enumerate(obj, start=1)]
        else:
            raise UserError(f"{path}: expected a dict of columns ({{'title': {{0: ...}}}}) or a list of dicts")
        if not rows:
            raise UserError(f"{path} holds no rows")
        require_columns(path, sorted({k for r in rows for k in r if k != "_line"}), wanted)
    else:
        rows = read_table(path, wanted)
    out = []
    for r in rows:
        kws = r.get(args.keywords_column)
        out.append(
            {
                "title": r.get(args.title_column),
                "text": r.get(args.text_column),
                "keywords": kws if kws not in ("", None) else None,
                "_line": r["_line"],
            }
        )
    return out


def _length_counter(args: PrepareArguments):
    if args.length_unit == "words":
        return lambda s: len(s.split())
    if args.tokenizer is None:
        return None
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(args.tokenizer)
    except (OSError, ValueError) as err:
        raise UserError(f"--tokenizer {args.tokenizer}: cannot load it ({str(err).splitlines()[0][:160]})") from None
    return lambda s: len(tok(s, add_special_tokens=False)["input_ids"]) + 1  # + end-of-text


def prepare_jobs(args: PrepareArguments) -> dict[str, Any]:
    """Run the whole preparation; returns the stats that are printed and saved."""
    from domainlm.tables import write_csv, write_json

    raw = load_postings(args)
    dropped: dict[str, int] = {"missing_title_or_text": 0, "duplicate": 0, "too_short": 0, "too_long": 0}
    seen: set[str] = set()
    postings: list[dict[str, Any]] = []
    for r in raw:
        if not isinstance(r["title"], str) or not isinstance(r["text"], str):
            dropped["missing_title_or_text"] += 1
            continue
        title, text = clean_title(clean_text(r["title"])), clean_text(r["text"])
        if not title or not text:
            dropped["missing_title_or_text"] += 1
            continue
        key = dedupe_key(title, text)
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        postings.append({"title": title, "text": text, "keywords": r["keywords"], "_line": r["_line"]})

    need = [p for p in postings if args.reextract or not clean_keywords(p["keywords"])]
    if need:
        from domainlm.keywords import TfidfKeywordExtractor

        extractor = TfidfKeywordExtractor([p["text"] for p in postings], (args.ngram_min, args.ngram_max))
        for p in need:
            p["keywords"] = extractor.extract(p["text"], top_n=args.top_n, diversity=args.diversity)
    for p in postings:
        p["keywords"] = clean_keywords(p["keywords"], top_n=args.top_n)
        try:
            p["row"] = format_record(p["title"], p["keywords"], p["text"])
        except ValueError as err:
            raise UserError(f"{args.input}: row {p['_line']}: {err}") from None

    count = _length_counter(args)
    kept: list[dict[str, Any]] = []
    for p in postings:
        n = count(p["row"]) if count else len(p["row"].split())
        p["length"] = n
        if n < args.min_tokens:
            dropped["too_short"] += 1
        elif args.max_tokens is not None and n > args.max_tokens:
            dropped["too_long"] += 1
        else:
            kept.append(p)
    if not kept:
        raise UserError(f"{args.input}: no posting is left after cleaning and the length filter ({dropped})")

    order = list(range(len(kept)))
    random.Random(args.seed).shuffle(order)
    n_val = round(len(kept) * args.validation_fraction)
    if args.validation_fraction > 0 and n_val == 0 and len(kept) > 1:
        n_val = 1
    val_idx = set(order[:n_val])
    splits = {
        "train": [kept[i] for i in sorted(set(order) - val_idx)],
        "validation": [kept[i] for i in sorted(val_idx)],
    }

    stats: dict[str, Any] = {
        "input": str(args.input),
        "read": len(raw),
        "kept": len(kept),
        "dropped": dropped,
        "keywords_extracted": len(need),
        "length_unit": args.length_unit if count else "words",
    }
    for name, rows in splits.items():
        lengths = sorted(p["length"] for p in rows)
        kws = [len(p["keywords"]) for p in rows]
        stats[name] = {
            "rows": len(rows),
            "length": _percentiles(lengths),
            "keywords_per_posting": round(statistics.mean(kws), 2) if kws else 0,
        }
    out = Path(args.output_dir)
    for name, rows in splits.items():
        if not rows:
            continue
        write_csv(
            out / f"{name}.csv",
            ({"text": p["row"], "title": p["title"], "keywords": ", ".join(p["keywords"])} for p in rows),
            OUTPUT_COLUMNS,
        )
    stats["arguments"] = asdict(args)
    write_json(out / "prepare_stats.json", stats)
    return stats


def _percentiles(values: list[int]) -> dict[str, int]:
    if not values:
        return {}

    def pct(q: float) -> int:
        return values[min(len(values) - 1, round(q * (len(values) - 1)))]

    return {"min": values[0], "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": values[-1]}


def summary(stats: dict[str, Any]) -> str:
    d = stats["dropped"]
    lines = [
        f"read {stats['read']} postings from {stats['input']}; kept {stats['kept']}",
        "dropped: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items()),
        f"keywords extracted for {stats['keywords_extracted']} postings",
    ]
    for name in ("train", "validation"):
        s = stats[name]
        length = s["length"]
        lines.append(
            f"{name}: {s['rows']} rows, {stats['length_unit']} per row min {length.get('min')} / median "
            f"{length.get('p50')} / max {length.get('max')}, {s['keywords_per_posting']} keywords per posting"
        )
    return "\n".join(lines)
