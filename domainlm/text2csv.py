"""Text files to ``train.csv`` / ``validation.csv`` with one ``text`` column, as ``run_clm.py`` reads them.

Inputs are text files, folders of ``.txt`` files (recursive, sorted by path, hidden folders skipped)
or CSV/JSON/JSONL/parquet tables whose ``--column`` holds the text. A text file is one document, a
table row is one document. ``--split`` turns each document into examples:

- ``file``: the whole document is one example (the GPT2-XL guide's layout; the default);
- ``line``: one example per line;
- ``paragraph``: one example per paragraph (paragraphs are separated by one or more blank lines);
- ``separator``: cut at each occurrence of ``--separator`` (``\\n`` and ``\\t`` in it mean newline, tab);
- ``tokens``: examples of at most ``--max_tokens`` tokens of a local tokenizer, cut on boundaries in
  this order of preference: a document is cut between paragraphs, consecutive paragraphs packed into
  one example while they fit; a paragraph that alone exceeds the limit is cut between lines (packed
  the same way, and never merged with its neighbouring paragraphs), a line between sentences (after
  ``.``, ``!``, ``?`` or ``…`` and any closing quotes or brackets, at whitespace; right after ``。``,
  ``！`` or ``？``), and a sentence at the longest prefix that fits (a token boundary). Only whitespace
  is lost at a cut, so the examples of one document, in order, are the document with some whitespace
  runs removed. The count leaves out the end-of-text token that ``run_clm.py`` appends to each record:
  use ``block_size - 1``.

Every document is normalised first: line endings ``\\r\\r\\n``, ``\\r\\n`` and ``\\r`` become ``\\n``,
UTF-8 that was read as cp1252 or Latin-1 is repaired (``itâ€™s`` becomes ``it’s``), Unicode becomes NFC.
An example that holds ``<|endoftext|>`` or ``<|pad|>`` is refused, naming the line: the tokenizer would
read the special token there, not text (``--separator '<|endoftext|>'`` cuts examples at it instead). Each example loses its trailing whitespace and leading blank lines; empty
examples and exact duplicates (the first one is kept) are dropped and counted, and an example of
validation that is also in train is dropped from validation. Validation comes from ``--validation``
inputs, or is held out of the train examples (``--validation_fraction``, rounded, at least one
example, chosen by ``--seed``; both splits keep the input order).

Everything is read and checked before anything is written. The CSVs are written into a hidden
folder inside the output folder, read back with the training loader (``domainlm.data.load_text_dataset``)
and compared with what was meant, and only then moved into place, with ``text2csv_stats.json``. A run
without a validation split removes the ``validation.csv`` an earlier run wrote (it may hold examples
that train now has) and leaves one that is not from text2csv, with a note.
"""

from __future__ import annotations

import math
import random
import re
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domainlm.cleaning import is_blank, repair_mojibake
from domainlm.errors import UserError, first_line
from domainlm.tables import (
    TABLE_SUFFIXES,
    cell_text,
    check_encoding,
    check_inputs_are_not_outputs,
    check_output_dir,
    check_output_names,
    is_earlier_output,
    read_table,
    read_text,
    settle_earlier_validation,
    staged_outputs,
    write_csv,
    write_json,
)
from domainlm.template import EOS_TOKEN, PAD_TOKEN

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SPLITS = ("file", "line", "paragraph", "separator", "tokens")
# Tables in formats not read here: as plain text they would become one garbled example.
OTHER_TABLE_SUFFIXES = (".tsv", ".tab", ".xlsx", ".xlsm", ".xls", ".ods")
DEFAULT_COLUMN = "text"
GUIDE_FILES = ("train.txt", "validation.txt")
STATS_FILE = "text2csv_stats.json"
OUTPUT_FILES = ("train.csv", "validation.csv", STATS_FILE)
# Special tokens of the project's tokenizers: in an example they would be read as that token, not as text.
RESERVED = {
    EOS_TOKEN: ("the end-of-text token", f"cut examples there with --separator '{EOS_TOKEN}', or remove it"),
    PAD_TOKEN: ("the padding token", "remove it"),
}
ENCODING_FLAG = "--encoding"  # named in the error for a file that is not in the --encoding it was read with
DEFAULT_VALIDATION_FRACTION = 0.1

# A paragraph ends at one or more blank lines (a line of only spaces or tabs counts as blank).
_PARAGRAPH_GAP = re.compile(r"(?P<gap>\n(?:[^\S\n]*\n)+)")
_LINE_GAP = re.compile(r"(?P<gap>\n)")
# A sentence ends with . ! ? or … and any closing quotes or brackets; the whitespace after it is the gap.
# Chinese and Japanese end one with 。！？ and need no space after it: there the gap may be empty.
_SENTENCE_GAP = re.compile(r"(?:[.!?…][\"'”’»)\]]*(?=[^\S\n])|[。！？][\"'”’」』）】》〉]*)(?P<gap>[^\S\n]*)")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[^\S\n]*\n)+")
# Levels of the tokens split, coarsest first: (name of the unit, the gap between two units).
_LEVELS = (("paragraph", _PARAGRAPH_GAP), ("line", _LINE_GAP), ("sentence", _SENTENCE_GAP))


@dataclass
class Text2CsvArgs:
    """What to convert and how; checks and defaults are resolved in ``__post_init__``.

    With no ``inputs`` (and no ``--validation``) it follows the GPT2-XL guide: ``train.txt`` and
    ``validation.txt`` of the current folder become ``train.csv`` and ``validation.csv`` there.
    """

    inputs: list[str] = field(default_factory=list)
    output_dir: str | None = None
    validation: list[str] = field(default_factory=list)
    column: str | None = None  # None: the default column, DEFAULT_COLUMN, where a table is read
    split: str | None = None
    separator: str | None = None
    max_tokens: int | None = None
    tokenizer: str | None = None
    validation_fraction: float | None = None
    seed: int = 42
    encoding: str = "utf-8"
    repair_encoding: bool = True  # UTF-8 once read as cp1252 or Latin-1, where a document shows it
    guide_mode: bool = field(default=False, init=False)
    column_given: bool = field(default=False, init=False)  # --column named on the command line

    def __post_init__(self) -> None:
        self.column_given = self.column is not None
        self.column = self.column if self.column is not None else DEFAULT_COLUMN
        self.inputs = list(self.inputs or [])
        self.validation = list(self.validation or [])
        if self.split is None:
            self.split = "separator" if self.separator is not None else "file"
        if self.split not in SPLITS:
            raise UserError(f"--split {self.split}: use one of {', '.join(SPLITS)}")
        if self.separator is not None:
            if self.split != "separator":
                raise UserError(f"--separator only applies to --split separator (not --split {self.split})")
            self.separator = normalise(self.separator.replace("\\n", "\n").replace("\\t", "\t"))
            if not self.separator:
                raise UserError("--separator is empty: give the string that separates examples, e.g. '<|endoftext|>'")
        elif self.split == "separator":
            raise UserError("--split separator needs --separator STRING, e.g. --separator '<|endoftext|>'")
        if self.split == "tokens":
            if self.max_tokens is None or self.tokenizer is None:
                raise UserError("--split tokens needs --max_tokens N and --tokenizer DIR (a local tokenizer folder)")
            if self.max_tokens < 1:
                raise UserError(f"--max_tokens {self.max_tokens}: give a positive number of tokens")
        elif self.max_tokens is not None or self.tokenizer is not None:
            raise UserError("--max_tokens and --tokenizer only apply to --split tokens")
        if self.validation_fraction is not None and not 0 <= self.validation_fraction < 1:
            raise UserError(
                f"--validation_fraction {self.validation_fraction}: give a number from 0 up to (not incl.) 1"
            )
        if not self.inputs:
            if self.validation:
                raise UserError("--validation needs training inputs too: python text2csv.py INPUT... --validation ...")
            if self.validation_fraction:
                raise UserError("--validation_fraction needs INPUT: without it validation.txt is the validation split")
            self._guide_inputs()
        elif self.output_dir is None:
            raise UserError("--output_dir DIR is required with INPUT (train.csv and validation.csv are written there)")
        if self.validation and self.validation_fraction:
            raise UserError("give either --validation INPUT... or --validation_fraction, not both")
        if self.validation_fraction is None:
            one_input = len(self.inputs) == 1 and not self.validation
            self.validation_fraction = DEFAULT_VALIDATION_FRACTION if one_input else 0.0
        check_encoding(self.encoding)
        check_output_dir(self.output_dir)
        check_output_names(self.output_dir, OUTPUT_FILES)
        self._check_input_kinds()

    def _check_input_kinds(self) -> None:
        """Tables this script cannot read, and a --column that no input has, before anything is read."""
        paths = [Path(p) for p in [*self.inputs, *self.validation]]
        suffixes = ", ".join(TABLE_SUFFIXES)
        for path in paths:
            if path.suffix.lower() in OTHER_TABLE_SUFFIXES and not path.is_dir():
                raise UserError(
                    f"{path}: text2csv does not read {path.suffix} tables, and --column applies only to {suffixes} "
                    "files; save it as CSV (comma-separated)"
                )
        if not self.column_given:  # text files need no column
            return
        if not any(p.suffix.lower() in TABLE_SUFFIXES for p in paths if not p.is_dir()):
            raise UserError(
                f"--column {self.column} applies to {suffixes} inputs, and none of the inputs "
                "is one (text files and folders are read whole); save the table as CSV, or leave out --column"
            )

    def _guide_inputs(self) -> None:
        """No INPUT: the guide's ``train.txt`` and ``validation.txt`` in the current folder."""
        cwd = Path.cwd()
        missing = [name for name in GUIDE_FILES if not (cwd / name).is_file()]
        if missing:
            raise UserError(
                f"no INPUT given, so text2csv does what the GPT2-XL guide says: it expected train.txt and "
                f"validation.txt in the current folder {cwd}, but {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} missing; put them there, or run "
                "`python text2csv.py INPUT... --output_dir DIR`"
            )
        self.guide_mode = True
        self.inputs = [GUIDE_FILES[0]]
        self.validation = [GUIDE_FILES[1]]
        if self.output_dir is None:
            self.output_dir = "."


# ---------------------------------------------------------------------------------------------------
# Text


def normalise(text: str, repair: bool = True) -> str:
    """Line endings to ``\\n`` (``\\r\\r\\n`` as one, as Windows tools write it after a header), UTF-8 that was
    read as cp1252 or Latin-1 repaired (``itâ€™s`` to ``it’s``: ``domainlm.cleaning.repair_mojibake``), and NFC."""
    text = text.replace("\r\r\n", "\n").replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", repair_mojibake(text) if repair else text)


def clean(example: str) -> str:
    """Without trailing whitespace and without leading blank lines (indentation of the first line stays)."""
    return _LEADING_BLANK_LINES.sub("", example.rstrip())


def split_document(text: str, split: str, separator: str | None = None) -> list[str]:
    """The examples of one normalised document before cleaning (``tokens`` is ``TokenCutter``)."""
    if split == "file":
        return [text]
    if split == "line":
        return text.split("\n")
    if split == "paragraph":
        return _PARAGRAPH_GAP.split(clean(text))[::2]  # [::2]: the named group's gaps are returned too
    if split == "separator":
        assert separator
        return text.split(separator)
    raise ValueError(f"split {split!r} is not a plain split")


@dataclass
class TokenCutter:
    """Cuts documents into examples of at most ``max_tokens`` tokens (see the module docstring)."""

    count_tokens: Callable[[str], int]
    max_tokens: int
    cuts: Counter = field(default_factory=Counter)  # how many units were cut on each kind of boundary
    # The most characters one token can stand for (``chars_per_token_bound``), None where unknown: a text
    # longer than this many characters per allowed token cannot fit and is not tokenised at all. Without
    # it every document was tokenised whole before its first cut (1.7 GB of memory for 10 MB of text).
    max_chars_per_token: int | None = None

    def fits(self, text: str) -> bool:
        if self.max_chars_per_token is not None and len(text) > self.max_chars_per_token * self.max_tokens:
            return False
        return self.count_tokens(text) <= self.max_tokens

    def __call__(self, text: str) -> list[str]:
        text = clean(text)
        if not text.strip():
            return []
        if self.fits(text):
            return [text]
        return [text[s:e] for s, e in self._cut(text, 0, len(text), 0)]

    def _cut(self, text: str, start: int, end: int, level: int) -> list[tuple[int, int]]:
        """Spans covering ``text[start:end]`` (which does not fit) on the boundaries of ``_LEVELS[level]``."""
        if level == len(_LEVELS):
            self.cuts["token"] += 1
            return self._cut_tokens(text, start, end)
        name, gap = _LEVELS[level]
        units = _units(text, start, end, gap)
        if len(units) < 2:  # no boundary of this kind inside: try the next finer one
            return self._cut(text, *units[0], level + 1) if units else []
        self.cuts[name] += 1
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(units):
            if not self.fits(text[slice(*units[i])]):
                spans += self._cut(text, *units[i], level + 1)
                i += 1
                continue
            j = self._longest_run(text, units, i)
            spans.append((units[i][0], units[j - 1][1]))
            i = j
        return spans

    def _longest_run(self, text: str, units: list[tuple[int, int]], i: int) -> int:
        """The largest ``j`` such that ``units[i:j]``, with the text between them, fits (unit ``i`` alone fits)."""

        def fits_to(j: int) -> bool:
            return self.fits(text[units[i][0] : units[j - 1][1]])

        good, step = i + 1, 1
        bad = len(units) + 1
        while good + step < bad:  # gallop, then bisect: few tokenizer calls for long runs
            if fits_to(good + step):
                good += step
                step *= 2
            else:
                bad = good + step
                break
        while bad - good > 1:
            mid = (good + bad) // 2
            if fits_to(mid):
                good = mid
            else:
                bad = mid
        return good

    def _cut_tokens(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """The longest prefixes that fit, one after the other; whitespace at a cut is dropped.

        Each prefix is found by galloping from a guess (4 characters a token), then bisecting. The rest
        of the text is counted only when a probe reaches its end: counting all of it before every cut
        made a long sentence quadratic (a 250,000-character line took over 40 s).
        """
        spans: list[tuple[int, int]] = []
        pos = start
        while pos < end:
            if pos > start:
                while pos < end and text[pos].isspace():
                    pos += 1
                if pos == end:
                    break
            good, probe = pos + 1, pos + 4 * self.max_tokens  # text[pos:good] fits; probe doubles until not
            while probe < end and self.fits(text[pos:probe].rstrip()):
                good, probe = probe, pos + 2 * (probe - pos)
            if probe >= end and self.fits(text[pos:end].rstrip()):  # the rest fits: the last piece
                spans.append((pos, pos + len(text[pos:end].rstrip())))
                break
            if good == pos + 1 and not self.fits(text[pos : pos + 1]):
                raise UserError(
                    f"--max_tokens {self.max_tokens} is less than one character ({text[pos]!r}) takes; raise it"
                )
            bad = min(end, probe)  # text[pos:bad] does not fit
            while bad - good > 1:
                mid = (good + bad) // 2
                if self.fits(text[pos:mid].rstrip()):
                    good = mid
                else:
                    bad = mid
            piece = text[pos:good].rstrip()
            if piece:
                spans.append((pos, pos + len(piece)))
            pos = good
        return spans


def _units(text: str, start: int, end: int, gap: re.Pattern[str]) -> list[tuple[int, int]]:
    """Spans of ``text[start:end]`` between the gaps, without trailing whitespace; blank ones left out."""
    spans: list[tuple[int, int]] = []
    pos = start
    for m in gap.finditer(text, start, end):
        spans.append((pos, m.start("gap")))
        pos = m.end("gap")
    spans.append((pos, end))
    out = []
    for s, e in spans:
        piece = text[s:e]
        if piece.strip():
            out.append((s, s + len(piece.rstrip())))
    return out


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained`` of a local folder, never the hub."""
    from domainlm.tokenizer import TOKENIZER_FILES, check_pretrained_name

    check_pretrained_name(
        path, "--tokenizer", "tokenizer", TOKENIZER_FILES, "make one with create_tokenizer.py", local_only=True
    )
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(Path(path).expanduser()), local_files_only=True)
    except (OSError, ValueError) as err:
        raise UserError(
            f"--tokenizer {path}: cannot load a tokenizer from this folder ({first_line(err, None)})"
        ) from None


def chars_per_token_bound(tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The most characters of text that one token of ``tokenizer`` can stand for, or None if unknown.

    A byte-level BPE without a normaliser whose vocabulary holds all 256 byte symbols (create_tokenizer.py's,
    GPT-2's) turns every byte of a text into part of some token, and a token is at most as many bytes as
    its longest vocabulary entry: a text of more characters than that many per token has more tokens.
    Other tokenizers may drop characters (a normaliser, whitespace splitting, an added token that strips
    the spaces around it), so they get no bound.
    """
    from tokenizers import pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.normalizer is not None:
        return None
    if not isinstance(backend.pre_tokenizer, pre_tokenizers.ByteLevel):
        return None
    if any(t.lstrip or t.rstrip for t in tokenizer.added_tokens_decoder.values()):
        return None
    vocab = tokenizer.get_vocab()
    if not set(pre_tokenizers.ByteLevel.alphabet()) <= vocab.keys():
        return None
    return max(len(t) for t in vocab)


def token_counter(tokenizer: PreTrainedTokenizerBase) -> Callable[[str], int]:
    """The number of tokens of a text, without special tokens (the trainer appends end-of-text itself)."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    return count


# ---------------------------------------------------------------------------------------------------
# Reading


def iter_text_files(folder: Path) -> list[Path]:
    """``*.txt`` under ``folder``, recursive, sorted by path; files in hidden folders are skipped."""
    files = []
    for path in folder.rglob("*.txt"):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts[:-1]):
            files.append(path)
    return sorted(files)


@dataclass(frozen=True)
class Document:
    """One document and where it starts, for messages: line ``number`` of a text file or CSV (a newline in
    the text is one in the file), line of a JSONL file, record of a JSON or parquet file."""

    text: str
    path: Path
    unit: str = "line"
    number: int = 1
    lines_follow: bool = True

    def where(self, text: str, offset: int) -> str:
        """``path: line N`` of ``offset`` in ``text`` (this document normalised: the same lines)."""
        number = self.number + (text.count("\n", 0, offset) if self.lines_follow else 0)
        return f"{self.path}: {self.unit} {number}"


def read_documents(path_str: str, column: str, encoding: str = "utf-8") -> list[Document]:
    """The documents of one input: a text file, a folder of ``.txt`` files, or a table's ``column``."""
    path = Path(path_str)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.is_dir():
        files = iter_text_files(path)
        if not files:
            raise UserError(
                f"{path}: no .txt files in this folder or below it; pass the text files themselves, "
                "or CSV/JSON files with --column"
            )
        return [Document(_read_text_document(f, encoding), f) for f in files]
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        raise UserError(f"{path}: pickles are not read here; save the data as CSV, JSON or JSONL and pass --column")
    if suffix in TABLE_SUFFIXES:
        unit = "line" if suffix in (".csv", ".jsonl") else "record"
        return [
            Document(cell_text(path, row, column) or "", path, unit, row["_line"], suffix == ".csv")
            for row in read_table(path, {column: "--column"}, encoding, ENCODING_FLAG)
        ]
    return [Document(_read_text_document(path, encoding), path)]


def _read_text_document(path: Path, encoding: str) -> str:
    text = read_text(path, encoding, ENCODING_FLAG)
    if not text or text.isspace():  # text.strip() would copy the whole file
        raise UserError(f"{path} is empty: give it some text, or leave it out of the inputs")
    return text


def check_reserved(doc: Document, text: str, pieces: list[str]) -> None:
    """A UserError naming the line when an example holds a special token (``RESERVED``) as text.

    ``pieces`` are the document's examples, substrings of ``text`` in order: a token that the split
    consumed (``--separator '<|endoftext|>'``) is not in them and is fine.
    """
    for token, (what, fix) in RESERVED.items():
        if token not in text:
            continue
        pos = 0
        for piece in pieces:
            start = text.find(piece, pos)  # the pieces are substrings of text, in order
            if token in piece:
                raise UserError(
                    f"{doc.where(text, start + piece.index(token))}: holds {what} {token}, which the tokenizer "
                    f"reads as that token in the middle of an example; {fix}"
                )
            pos = start + len(piece)


# ---------------------------------------------------------------------------------------------------
# Examples


@dataclass
class SplitStats:
    """What one split read, kept and dropped."""

    inputs: list[str]
    documents: int = 0
    examples: int = 0
    characters: int = 0
    dropped: Counter = field(default_factory=Counter)
    tokens: int | None = None
    max_tokens_per_example: int | None = None
    held_out: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"inputs": self.inputs}
        if self.held_out:  # documents and drops are counted once, in train
            out["held_out_of_train"] = True
        else:
            out["documents"] = self.documents
        out.update(examples=self.examples, characters=self.characters)
        if not self.held_out:
            out["dropped"] = {k: self.dropped[k] for k in _DROP if k in self.dropped}
        if self.tokens is not None:
            out["tokens"] = self.tokens
            out["max_tokens_per_example"] = self.max_tokens_per_example
        return out


def collect_examples(
    inputs: list[str],
    column: str,
    splitter: Callable[[str], list[str]],
    stats: SplitStats,
    encoding: str = "utf-8",
    repair: bool = True,
) -> list[str]:
    """Examples of all ``inputs`` in order: normalised, cleaned, empties and duplicates dropped and counted."""
    examples: list[str] = []
    seen: set[str] = set()
    for path in inputs:
        kept_before = len(examples) + stats.dropped["duplicate"]
        for doc in read_documents(path, column, encoding):
            stats.documents += 1
            text = normalise(doc.text, repair)
            pieces = splitter(text)
            check_reserved(doc, text, pieces)
            for piece in pieces:
                piece = clean(piece)
                if is_blank(piece):  # a line of zero-width spaces, say: kept as written, it would be an example
                    stats.dropped["empty"] += 1
                elif piece in seen:
                    stats.dropped["duplicate"] += 1
                else:
                    seen.add(piece)
                    examples.append(piece)
        if len(examples) + stats.dropped["duplicate"] == kept_before:
            if Path(path).suffix.lower() in TABLE_SUFFIXES:
                raise UserError(
                    f"{path}: no examples: column {column!r} is empty in every row; choose another --column"
                )
            raise UserError(f"{path}: no examples: every piece it splits into is empty; check the file and --split")
    for key in ("empty", "duplicate"):
        stats.dropped.setdefault(key, 0)
    return examples


def hold_out(examples: list[str], fraction: float, seed: int, what: str) -> tuple[list[str], list[str]]:
    """``(train, validation)``: ``round(fraction * n)`` examples (at least one) chosen with ``seed``."""
    n = len(examples)
    if n < 2:
        raise UserError(
            f"{what} gives {n} example, too few to hold out --validation_fraction {fraction} for validation; "
            "choose a finer --split (paragraph, line, tokens), give --validation INPUT, or --validation_fraction 0"
        )
    k = min(n - 1, max(1, math.floor(fraction * n + 0.5)))
    chosen = set(random.Random(seed).sample(range(n), k))
    train = [t for i, t in enumerate(examples) if i not in chosen]
    validation = [t for i, t in enumerate(examples) if i in chosen]
    return train, validation


def build_splits(args: Text2CsvArgs) -> tuple[dict[str, list[str]], dict[str, SplitStats], Counter]:
    """Read every input and return the examples and statistics per split, and the tokens-mode cuts."""
    counter: Callable[[str], int] | None = None
    cutter: TokenCutter | None = None
    if args.split == "tokens":
        assert args.tokenizer and args.max_tokens
        tokenizer = load_tokenizer(args.tokenizer)
        counter = token_counter(tokenizer)
        cutter = TokenCutter(counter, args.max_tokens, max_chars_per_token=chars_per_token_bound(tokenizer))
        splitter: Callable[[str], list[str]] = cutter
    else:
        split, separator = args.split, args.separator

        def splitter(text: str) -> list[str]:
            return split_document(text, split, separator)

    stats = {"train": SplitStats(args.inputs)}
    train = collect_examples(args.inputs, args.column, splitter, stats["train"], args.encoding, args.repair_encoding)
    splits = {"train": train}
    if args.validation:
        stats["validation"] = SplitStats(args.validation)
        validation = collect_examples(
            args.validation, args.column, splitter, stats["validation"], args.encoding, args.repair_encoding
        )
        in_train = set(train)
        kept = [t for t in validation if t not in in_train]
        stats["validation"].dropped["in_train"] = len(validation) - len(kept)
        if not kept:
            raise UserError(
                f"{', '.join(args.validation)}: every validation example is also in train; give other validation inputs"
            )
        splits["validation"] = kept
    elif args.validation_fraction:
        what = args.inputs[0] if len(args.inputs) == 1 else f"the {len(args.inputs)} inputs"
        splits["train"], splits["validation"] = hold_out(train, args.validation_fraction, args.seed, what)
        stats["validation"] = SplitStats(args.inputs, held_out=True)
    for name, examples in splits.items():
        st = stats[name]
        st.examples = len(examples)
        st.characters = sum(len(t) for t in examples)
        if counter is not None:
            counts = [counter(t) for t in examples]
            st.tokens, st.max_tokens_per_example = sum(counts), max(counts)
            if args.max_tokens is not None and st.max_tokens_per_example > args.max_tokens:
                raise AssertionError(f"an example of {st.max_tokens_per_example} tokens, over {args.max_tokens}")
    return splits, stats, (cutter.cuts if cutter else Counter())


# ---------------------------------------------------------------------------------------------------
# Writing


def check_round_trip(path: Path, expected: list[str], name: str) -> None:
    """Read ``path`` with the training loader; every example must come back unchanged and in order."""
    from domainlm.data import load_text_dataset, no_progress_bars

    # a cache of our own: never a stale entry for a file rewritten within the same second
    with no_progress_bars(), tempfile.TemporaryDirectory(prefix="text2csv-cache-") as cache:
        got = list(load_text_dataset(str(path), "text", cache_dir=cache)["text"])
    for row, (want, have) in enumerate(zip(expected, got, strict=False), start=1):
        if want != have:
            raise UserError(
                f"{name}: row {row} changed when read back with the training loader "
                f"(wrote {want[:60]!r}, read {(have or '')[:60]!r}); nothing was written, please report this"
            )
    if len(got) != len(expected):
        raise UserError(
            f"{name}: wrote {len(expected)} rows but the training loader reads {len(got)} "
            f"(first difference at row {min(len(got), len(expected)) + 1}); nothing was written, please report this"
        )


def write_outputs(output_dir: Path, splits: dict[str, list[str]], stats: dict[str, Any]) -> list[Path]:
    """Write and read back into a hidden folder inside ``output_dir``; move into place only when all is well."""
    with staged_outputs(output_dir) as staged:
        for name, examples in splits.items():
            path = staged.file(f"{name}.csv")
            write_csv(path, ({"text": t} for t in examples), ["text"])
            check_round_trip(path, examples, str(output_dir / f"{name}.csv"))
        write_json(staged.file(STATS_FILE), stats)
    return [output_dir / name for name in staged.names]


# ---------------------------------------------------------------------------------------------------
# The command


def text2csv(args: Text2CsvArgs) -> dict[str, Any]:
    """Read, split, clean, check, write; print a summary and return the statistics written to the JSON."""
    assert args.output_dir is not None
    output_dir = Path(args.output_dir)
    check_inputs_are_not_outputs([*args.inputs, *args.validation], output_dir, OUTPUT_FILES)
    old_validation = output_dir / "validation.csv"  # this run may write none: an earlier run's is not left
    old_is_ours = is_earlier_output(old_validation, output_dir / STATS_FILE, lambda st: "validation" in st["splits"])
    splits, split_stats, cuts = build_splits(args)
    stats: dict[str, Any] = {
        "split": args.split,
        "column": args.column,
        "validation_fraction": 0.0 if args.validation else args.validation_fraction,
        "seed": args.seed,
        "encoding": args.encoding,
    }
    if not args.repair_encoding:
        stats["repair_encoding"] = False
    if args.separator is not None:
        stats["separator"] = args.separator
    if args.split == "tokens":
        stats["max_tokens"] = args.max_tokens
        stats["tokenizer"] = args.tokenizer
        stats["cut"] = {name: cuts[name] for name in ("paragraph", "line", "sentence", "token")}
    stats["splits"] = {name: st.as_dict() for name, st in split_stats.items()}
    written = write_outputs(output_dir, splits, stats)
    for line in summary_lines(args, stats):
        print(line, flush=True)
    print(f"wrote {', '.join(str(p) for p in written)}", flush=True)
    if "validation" not in splits:
        settle_earlier_validation(old_validation, old_is_ours, "text2csv", lambda line: print(line, flush=True))
    return stats


def summary_lines(args: Text2CsvArgs, stats: dict[str, Any]) -> Iterator[str]:
    """The summary printed after writing: per split, examples, characters, and what was dropped and why."""
    mode = "the GPT2-XL guide's layout, " if args.guide_mode else ""
    yield f"text2csv: {mode}one example per {_UNIT[args.split]}"
    for name, st in stats["splits"].items():
        figures = f"{_n(st['examples'], 'example')}, {_n(st['characters'], 'character')}"
        if "tokens" in st:
            figures += f", {_n(st['tokens'], 'token')} (at most {st['max_tokens_per_example']:,} per example)"
        if st.get("held_out_of_train"):
            source = f"held out of train ({stats['validation_fraction']:g}, seed {stats['seed']})"
        else:
            dropped = ", ".join(f"{n:,} {_DROP[k]}" for k, n in st["dropped"].items())
            source = f"from {_n(st['documents'], 'document')}; dropped {dropped}"
        yield f"  {name + '.csv:':16}{figures}; {source}"
    if "cut" in stats:
        c = stats["cut"]
        yield (
            f"  cut: {_n(c['paragraph'], 'document')} between paragraphs, {_n(c['line'], 'paragraph')} between "
            f"lines, {_n(c['sentence'], 'line')} between sentences, {_n(c['token'], 'sentence')} between tokens"
        )
    if "validation" not in stats["splits"]:
        yield "  no validation split: pass --validation INPUT... or --validation_fraction 0.1 for one"


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


_UNIT = {
    "file": "document (file or table row)",
    "line": "line",
    "paragraph": "paragraph",
    "separator": "piece between separators",
    "tokens": "run of paragraphs within the token limit",
}
_DROP = {"empty": "empty", "duplicate": "duplicate", "in_train": "also in train"}
