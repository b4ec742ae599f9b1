"""Cleaning scraped posting text: HTML, scraping leftovers, Unicode and line endings.

Paragraphs (blank-line separated) and line breaks inside them are kept; what goes is markup,
"Show more"/"See more" buttons the scraper captured, invisible characters, trailing spaces and
runs of blank lines. Only known HTML element names count as tags, so ``salary <50k`` or
``<https://example.com/job>`` survive.
"""

from __future__ import annotations

import html
import re
import unicodedata

_ELEMENTS = (
    "a|abbr|address|article|aside|b|big|blockquote|body|br|center|cite|code|col|colgroup|dd|del|div|dl|dt|em|"
    "font|footer|h[1-6]|head|header|hr|html|i|img|ins|kbd|li|main|mark|meta|nav|ol|p|pre|q|s|section|small|"
    "span|strike|strong|sub|sup|table|tbody|td|tfoot|th|thead|title|tr|tt|u|ul"
)
_DROP_ELEMENTS = re.compile(r"(?is)<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?-->")
# Tags that break lines. Each becomes a marker; a run of markers (with the whitespace of pretty-printed
# HTML between them) becomes one break, so "</div><div>" is one line break, not two.
_BREAK_TAGS = re.compile(
    r"(?i)<(/?)(br|li|p|h[1-6]|ul|ol|table|blockquote|pre|section|article|header|footer|div|tr|dd|dt|hr)\b[^<>]*>"
)
_PARAGRAPH, _LINE, _BR, _ITEM = "\x02", "\x03", "\x01", "\x04"
_MARKER_RUN = re.compile(r"\s*[\x01-\x04][\x01-\x04\s]*")
_TAG = re.compile(rf"(?i)</?({_ELEMENTS})\b(\s[^<>]*)?/?>")

# Buttons a scraper picks up: alone on a line, after an ellipsis, or glued to the end of the text.
_LEFTOVER_LINE = re.compile(r"(?im)^[ \t]*(?:…|\.\.\.)?[ \t]*(show|see|read) (more|less)[ \t]*$")
_ELLIPSIS_LEFTOVER = re.compile(r"(?i)(…|\.\.\.)[ \t]*(show|see|read) more\b")
_GLUED_ENDINGS = ("Show more", "See more", "Show less", "See less")
_GLUED_LEFTOVER = re.compile(rf"(?<=[.!?:)\w])({'|'.join(_GLUED_ENDINGS)})\s*$")

_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")  # soft hyphen, zero widths
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# C1 controls in scraped text are Windows-1252 punctuation read as Latin-1 ("Analyst\x92s"): map them
# back ("Analyst’s"); the five bytes cp1252 leaves undefined are dropped.
_CP1252 = {chr(c): bytes([c]).decode("cp1252", errors="ignore") for c in range(0x80, 0xA0)}
_C1 = re.compile("[\x80-\x9f]")
# UTF-8 read as cp1252 or Latin-1 ("mojibake"): "cookâ€™s" for "cook’s", "cafÃ©" for "café". A text is
# repaired only when it shows sequences that correct text does not hold (``_SURE``): "â€" and a third byte
# (U+2000-21FF: quotes, dashes, ™), "Ã" or "Â" followed by a symbol or letter that never follows them in a
# word (not a space, quote, dash or ellipsis: "«MAÇÃ»", "SANTÉ\xa0:" and "JOSÉ’s" are correct text), "ðŸ"
# (emoji), or a C1 control after the lead of a 3- or 4-byte character (Latin-1's reading; after a 2-byte lead it
# may be cp1252 read as Latin-1: "SANTÉ\x85" is "SANTÉ…"). Then every lead character with its
# continuation characters is read back as the bytes they were and decoded as UTF-8; a run that is not valid
# UTF-8, or would decode to a C1 control or to U+0700-07FF (Syriac to NKo), stays. Text read wrongly twice
# ("Ã¢â‚¬â„¢") takes a second pass.
_BYTE_OF = {bytes([b]).decode("cp1252", errors="ignore") or chr(b): b for b in range(0x80, 0x100)}
_BYTE_OF.update({chr(b): b for b in range(0x80, 0xA0)})  # Latin-1's reading: C1 controls


def _chars(low: int, high: int, but: bytes = b"") -> str:
    return "".join(re.escape(c) for c, b in _BYTE_OF.items() if low <= b <= high and b not in but)


_CONT = f"[{_chars(0x80, 0xBF)}]"
_MOJIBAKE = re.compile(
    f"[{_chars(0xC2, 0xDF)}]{_CONT}|[{_chars(0xE0, 0xEF)}]{_CONT}{{2}}|[{_chars(0xF0, 0xF4)}]{_CONT}{{3}}"
)
_PUNCTUATION = bytes([0x85, 0x8B, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x9B, 0xA0, 0xAB, 0xAD, 0xB0, 0xB7, 0xBB])
_SURE = re.compile(
    f"\u00e2[\u20ac\u201a\u0192\u201e\u2020\u2021]{_CONT}"  # â€ â‚ âƒ â„ â€  â€¡ + a third byte
    f"|\u00c3[{_chars(0x80, 0xBF, _PUNCTUATION)}]"
    f"|\u00c2[{_chars(0xA1, 0xBF, _PUNCTUATION)}]"
    f"|\u00f0\u0178{_CONT}{{2}}"  # ðŸ: the emoji planes
    f"|[{_chars(0xE0, 0xF4)}][\x80-\x9f]"
)


def repair_mojibake(text: str) -> str:
    """UTF-8 that was read as cp1252 or Latin-1, read as UTF-8 again, where the text shows it (see ``_SURE``)."""
    for _ in range(3):  # read wrongly twice is repaired in two passes; a third finds nothing
        if text.isascii() or not _SURE.search(text):
            return text
        text = _MOJIBAKE.sub(_utf8_again, text)
    return text


def _utf8_again(m: re.Match[str]) -> str:
    try:
        fixed = bytes(_BYTE_OF[c] for c in m.group()).decode("utf-8")
    except UnicodeDecodeError:
        return m.group()
    return m.group() if "\x80" <= fixed <= "\x9f" or "\u0700" <= fixed <= "\u07ff" else fixed


_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalise_newlines(text: str) -> str:
    """``\\r\\r\\n`` (Windows text written twice), ``\\r\\n``, ``\\r`` and Unicode separators to ``\\n``."""
    text = text.replace("\r\r\n", "\n").replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\u2028", "\n").replace("\u2029", "\n\n")


def _break_marker(m: re.Match[str]) -> str:
    closing, name = m.group(1), m.group(2).lower()
    if name == "br":
        return _BR
    if name == "li":
        return "" if closing else _ITEM
    return _LINE if name in ("div", "tr", "dd", "dt", "hr") else _PARAGRAPH


def _break(m: re.Match[str]) -> str:
    run = m.group(0)
    gap = "\n\n" if _PARAGRAPH in run or run.count(_BR) >= 2 else "\n"
    return gap + "- " if _ITEM in run else gap


def strip_html(text: str) -> str:
    """Tags out; block elements to line or paragraph breaks (``<br><br>`` is a paragraph), list items to
    ``- `` lines."""
    text = _DROP_ELEMENTS.sub("", text)
    text = _MARKER_RUN.sub(_break, _BREAK_TAGS.sub(_break_marker, text))
    return _TAG.sub("", text)


def _normalise(text: str) -> str:
    """Line endings, HTML, entities, NFC, invisible and control characters."""
    text = normalise_newlines(text)
    if "<" in text:
        text = strip_html(text)
    text = html.unescape(text)  # after the tags, so that an escaped "&lt;b&gt;" stays visible text
    text = repair_mojibake(text)  # before C1 controls are read as cp1252 below
    text = _INVISIBLE.sub("", normalise_newlines(unicodedata.normalize("NFC", text)))
    text = _C1.sub(lambda m: _CP1252[m.group()], text.replace("\t", " "))
    return _CONTROL.sub("", text)


def clean_text(text: str) -> str:
    """Posting text without HTML or scraping leftovers, NFC, ``\\n`` line endings, paragraphs kept."""
    text = _LEFTOVER_LINE.sub("", _normalise(text))
    text = _ELLIPSIS_LEFTOVER.sub(r"\1", text)
    lines = [line.strip() for line in _SPACES.sub(" ", text).split("\n")]
    text = _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
    if text.endswith(_GLUED_ENDINGS):  # the regex alone would scan the whole text
        text = _GLUED_LEFTOVER.sub("", text).rstrip()
    return text


_PLAIN_LINE = re.compile(r"[ -%'-;=?-~]*")  # printable ASCII without "<" and "&": nothing to normalise


def clean_line(text: str) -> str:
    """A one-line field (a title, a keyword): normalised like text, all whitespace to single spaces."""
    return " ".join((text if _PLAIN_LINE.fullmatch(text) else _normalise(text)).split())


def is_blank(text: str) -> bool:
    """Nothing a reader sees: only whitespace and invisible characters (zero widths, soft hyphens)."""
    return not _INVISIBLE.sub("", text).strip()


def dedupe_key(title: str, text: str) -> str:
    """Two postings with the same key are the same posting: case, spacing, punctuation and Unicode
    compatibility forms (full-width letters, ligatures) ignored."""
    joined = unicodedata.normalize("NFKC", f"{title}\n{text}").casefold()
    return " ".join(re.findall(r"\w+", joined))


def text_key(text: str) -> str:
    """``dedupe_key`` of the text alone: the split keeps postings that share a text together."""
    return dedupe_key("", text)
