"""The record template: ``title<|SEP|>kw1, kw2<|SEP|>body``.

The one place that knows how a job-posting record is laid out. Data preparation writes rows with
``format_record``, training recognises them with ``is_record``, and generation builds prompts with
``format_prompt``, so the three cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

SEP_TOKEN = "<|SEP|>"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
KEYWORD_JOINER = ", "

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Record:
    title: str
    keywords: tuple[str, ...]
    body: str


def clean_title(title: str) -> str:
    """A title is one line: inner whitespace (newlines included) collapses to one space."""
    return _SPACES.sub(" ", title).strip()


def clean_keywords(keywords: Iterable[str] | str | None, top_n: int | None = None) -> list[str]:
    """Keywords in their order, stripped, without case-insensitive duplicates, capped at ``top_n``.

    A string is split on commas. Commas and newlines inside one keyword become spaces, because the
    comma is the separator inside the record.
    """
    if keywords is None:
        return []
    if isinstance(keywords, str):
        keywords = keywords.split(",")
    out: list[str] = []
    seen: set[str] = set()
    for kw in keywords:
        if kw is None:
            continue
        kw = _SPACES.sub(" ", str(kw).replace(",", " ")).strip()
        key = kw.casefold()
        if kw and key not in seen:
            seen.add(key)
            out.append(kw)
    return out[:top_n] if top_n is not None else out


def _check_no_sep(field: str, value: str) -> None:
    if SEP_TOKEN in value:
        raise ValueError(f"the {field} contains the separator {SEP_TOKEN}; remove it from the data")


def format_prompt(title: str, keywords: Iterable[str] | str | None) -> str:
    """What generation is given: ``title<|SEP|>kw1, kw2<|SEP|>`` (the body follows)."""
    title = clean_title(title)
    kws = clean_keywords(keywords)
    _check_no_sep("title", title)
    for kw in kws:
        _check_no_sep("keywords", kw)
    return f"{title}{SEP_TOKEN}{KEYWORD_JOINER.join(kws)}{SEP_TOKEN}"


def format_record(title: str, keywords: Iterable[str] | str | None, body: str) -> str:
    """One training row: the prompt followed by the body. The end-of-text is added at tokenisation."""
    _check_no_sep("text", body)
    return format_prompt(title, keywords) + body


def is_record(text: str | None) -> bool:
    """True for rows in the record layout (two separators or more)."""
    return text is not None and text.count(SEP_TOKEN) >= 2


def parse_record(text: str) -> Record:
    """Split a row (or a generated text) back into title, keywords and body."""
    parts = text.split(SEP_TOKEN, 2)
    if len(parts) < 3:
        raise ValueError(f"not a record: expected two {SEP_TOKEN} separators in {text[:60]!r}")
    title, kws, body = parts
    return Record(title=title, keywords=tuple(clean_keywords(kws)), body=body)


def prompt_length_chars(text: str) -> int:
    """Characters of ``text`` up to and including its second separator (the prompt part)."""
    first = text.index(SEP_TOKEN)
    second = text.index(SEP_TOKEN, first + len(SEP_TOKEN))
    return second + len(SEP_TOKEN)
