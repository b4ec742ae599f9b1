"""Cleaning scraped posting text: HTML, scraping leftovers, Unicode and line endings.

Paragraphs (blank-line separated) and line breaks inside them are kept; what goes is markup,
"Show more"/"See more" buttons the scraper captured, trailing spaces and runs of blank lines.
"""

from __future__ import annotations

import html
import re
import unicodedata

_BLOCK_TAGS = re.compile(r"(?i)<\s*(br|/p|/div|/li|/h[1-6]|/ul|/ol|/tr)\s*/?\s*>")
_LI_TAG = re.compile(r"(?i)<\s*li[^>]*>")
_TAG = re.compile(r"<[^>]{0,500}>")
_LEFTOVER_LINE = re.compile(r"(?im)^\s*(show more|show less|see more|see less|…\s*more|\.\.\.\s*more)\s*$")
_TRAILING_LEFTOVER = re.compile(r"(?i)\s*(show more|see more)\s*$")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalise_newlines(text: str) -> str:
    return text.replace("\r\r\n", "\n").replace("\r\n", "\n").replace("\r", "\n")


def clean_text(text: str) -> str:
    """Posting text without HTML or scraping leftovers, NFC, ``\\n`` line endings, paragraphs kept."""
    text = normalise_newlines(text)
    if "<" in text and ">" in text:
        text = _BLOCK_TAGS.sub("\n", text)
        text = _LI_TAG.sub("\n- ", text)
        text = _TAG.sub("", text)
    text = html.unescape(text)
    text = unicodedata.normalize("NFC", text)
    text = _LEFTOVER_LINE.sub("", text)
    text = _TRAILING_LEFTOVER.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return _BLANK_RUNS.sub("\n\n", text).strip()


def dedupe_key(title: str, text: str) -> str:
    """Two postings with the same key are the same posting: case, spacing and punctuation ignored."""
    joined = f"{title}\n{text}".casefold()
    return " ".join(re.findall(r"\w+", joined))
