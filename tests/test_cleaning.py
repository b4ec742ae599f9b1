"""Cleaning scraped postings: exact input -> output strings."""

import pytest

from domainlm.cleaning import clean_line, clean_text, dedupe_key, normalise_newlines, text_key


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        # HTML: block elements become line or paragraph breaks, list items "- " lines, entities characters.
        (
            "<p>We&rsquo;re hiring&nbsp;a <b>Data</b> Engineer.</p><p>You will:</p>"
            "<ul><li>Build pipelines</li><li>Ship &amp; test</li></ul>",
            "We’re hiring a Data Engineer.\n\nYou will:\n\n- Build pipelines\n- Ship & test",
        ),
        ("Line one<br>line two<BR/>line three", "Line one\nline two\nline three"),
        ("<div>a</div><div>b</div>", "a\nb"),
        ("one<br><br>two<br>three", "one\n\ntwo\nthree"),
        (
            "<h2>About</h2>We build.<ul>\n  <li>a</li>\n  <li>b</li>\n</ul>\n<p>After</p>",
            "About\n\nWe build.\n\n- a\n- b\n\nAfter",
        ),
        ("<script>track()</script>Hi<!-- tracking -->!<style>p {}</style>", "Hi!"),
        # Only HTML element names are tags: comparisons and bracketed links stay.
        ("Salary <50k and >30k, see <https://x.org/job>.", "Salary <50k and >30k, see <https://x.org/job>."),
        ("Reply to <Hiring Manager>", "Reply to <Hiring Manager>"),
        ("&lt;b&gt; is how bold is written", "<b> is how bold is written"),
        # Scraping leftovers: button text alone on a line, after an ellipsis, glued to the end.
        ("Great benefits.\nShow more\nShow less", "Great benefits."),
        ("Great benefits.Show more", "Great benefits."),
        ("We offer a lot…see more\n\nApply", "We offer a lot…\n\nApply"),
        ("We offer...  Show more", "We offer..."),
        ("To see more of our work, visit us.\nSee more", "To see more of our work, visit us."),
        # Line endings, spaces, blank-line runs; paragraphs kept.
        ("One\r\ntwo\r\r\nthree\rfour", "One\ntwo\nthree\nfour"),
        ("  Para one  \t line  \n \n\n\n\nPara two\u00a0\u00a0end  \n\n", "Para one line\n\nPara two end"),
        ("first\u2028second\u2029third", "first\nsecond\n\nthird"),
        # Unicode: NFC, invisible characters and controls removed.
        ("Cafe\u0301 na\u0131ve", "Café naıve"),
        ("zero\u200bwidth soft\u00adhyphen bom\ufeff bell\x07", "zerowidth softhyphen bom bell"),
        ("The Analyst\x92s role \x96 \x93data\x94\x85\x81", "The Analyst’s role – “data”…"),  # cp1252 read as Latin-1
        # UTF-8 read as cp1252 or Latin-1 (the real postings hold some), and text that only
        # looks like it
        ("a line cookâ€™s shift, cafÃ© â€œnaÃ¯veâ€\x9d, Â£40k, ðŸš€", "a line cook’s shift, café “naïve”, £40k, 🚀"),
        ("cookâ\x80\x99s", "cook’s"),
        ("Ã¢â‚¬â„¢ read wrongly twice, Ã‰COLE, 5â‚¬, Trademarkâ„¢", "’ read wrongly twice, ÉCOLE, 5€, Trademark™"),
        ("São Paulo, naïve, Ångström, ß¹, Ã alone", "São Paulo, naïve, Ångström, ß¹, Ã alone"),
        # correct text in which a capital letter meets a space, quote, dash or symbol: no mojibake shown, none fixed
        (
            "SANTÉ\xa0: « Il a mangé\xa0» « ÉTÉ» CAFÉ… JOSÉ’s CAFÉ–BAR PÍŠE, BLÍŽE, ÚŽASNÝ «MAÇÃ» MAÇÃ\xa0é SÃ… "
            "KOÇ’un «ÑÑ» Ð° Ø½ 3×½ Æ’",
            "SANTÉ : « Il a mangé » « ÉTÉ» CAFÉ… JOSÉ’s CAFÉ–BAR PÍŠE, BLÍŽE, ÚŽASNÝ «MAÇÃ» MAÇÃ é SÃ… KOÇ’un "
            "«ÑÑ» Ð° Ø½ 3×½ Æ’",
        ),
        ("SANTÉ\x85 (cp1252 read as Latin-1)", "SANTÉ… (cp1252 read as Latin-1)"),
        ("", ""),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_clean_text_is_idempotent():
    raw = "<p>A &amp; B</p>\r\n\r\n\r\n<ul><li>x</li></ul>Show more"
    once = clean_text(raw)
    assert clean_text(once) == once == "A & B\n\n- x"
    twice_wrong = "Ã¢â‚¬Å“Ã‚Â£5Ã¢â‚¬â„¢"  # UTF-8 read as cp1252 twice
    assert clean_text(twice_wrong) == clean_text(clean_text(twice_wrong)) == "“£5’"


def test_normalise_newlines_reads_the_windows_csv_quirk():
    assert normalise_newlines("text\r\r\nrow\r\nnext\rlast") == "text\nrow\nnext\nlast"


def test_clean_line_makes_one_line():
    assert clean_line("  Senior\n Data&nbsp;Engineer <b>(m/f/d)</b>  ") == "Senior Data Engineer (m/f/d)"


def test_dedupe_key_ignores_case_spacing_punctuation_and_compatibility_forms():
    a = dedupe_key("Data Engineer", "Build pipelines.\n\nUse SQL!")
    assert a == "data engineer build pipelines use sql"
    assert dedupe_key("DATA  engineer", "Build pipelines -- use sql") == a
    assert dedupe_key("Ｄａｔａ Engineer", "Build pipelines; use SQL") == a  # full-width letters
    assert dedupe_key("Data Engineer", "Build pipelines. Use Python!") != a
    assert text_key("Use SQL") == text_key("use sql.") != text_key("use sql server")
