import pytest

from domainlm.template import (
    SEP_TOKEN,
    clean_keywords,
    format_prompt,
    format_record,
    is_record,
    parse_record,
    prompt_length_chars,
)


def test_format_record_exact():
    row = format_record("Data Scientist - Recsys", ["Python", "SQL", "a/b testing"], "We build\nthings.")
    assert row == "Data Scientist - Recsys<|SEP|>Python, SQL, a/b testing<|SEP|>We build\nthings."


def test_format_prompt_is_the_record_prefix():
    prompt = format_prompt("Nurse, Night Shift – Köln", "triage, wound care")
    assert prompt == "Nurse, Night Shift – Köln<|SEP|>triage, wound care<|SEP|>"
    assert format_record("Nurse, Night Shift – Köln", "triage, wound care", "Body").startswith(prompt)
    assert prompt_length_chars(prompt + "Body") == len(prompt)


def test_title_is_one_line():
    assert format_prompt("  Senior\n Engineer\t ", []) == "Senior Engineer<|SEP|><|SEP|>"


def test_clean_keywords_keeps_order_drops_duplicates_and_caps():
    assert clean_keywords("python, SQL ,, Python, a,b", top_n=None) == ["python", "SQL", "a", "b"]
    assert clean_keywords(["SQL", "sql", " spark ", "x, y", None, ""], top_n=2) == ["SQL", "spark"]
    assert clean_keywords(["x, y"]) == ["x y"]
    assert clean_keywords(None) == []


def test_separator_inside_data_is_refused():
    with pytest.raises(ValueError, match="title"):
        format_prompt(f"a{SEP_TOKEN}b", [])
    with pytest.raises(ValueError, match="text"):
        format_record("t", [], f"body {SEP_TOKEN}")


def test_parse_round_trip_and_is_record():
    row = format_record("Chef", ["knife skills", "haccp"], "Cook.\n\nClean.")
    rec = parse_record(row)
    assert (rec.title, rec.keywords, rec.body) == ("Chef", ("knife skills", "haccp"), "Cook.\n\nClean.")
    assert is_record(row) and not is_record("plain text") and not is_record(None)
    with pytest.raises(ValueError, match=r"^not a record: expected two <\|SEP\|> separators in 'no separators'$"):
        parse_record("no separators")
