"""Keyphrase extraction by maximal marginal relevance (MMR).

MMR picks, one at a time, the candidate n-gram that is most relevant to the posting and least
similar to the phrases already picked: ``score = (1 - diversity) * relevance - diversity * redundancy``.

The ``tfidf`` backend needs no model: a candidate's relevance is its TF-IDF weight in the posting
(document frequencies over the whole corpus, computed once), and two candidates are as similar as
their word sets (Jaccard). It is fast and offline, and good enough to steer generation; a
sentence-embedding backend measures relevance as meaning rather than word statistics.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_WORD = re.compile(r"[^\W\d_][\w'+#./-]*[\w+#]|[^\W\d_]", re.UNICODE)

STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "across",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "either",
        "etc",
        "few",
        "for",
        "from",
        "further",
        "get",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "me",
        "more",
        "most",
        "must",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "one",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "per",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "upon",
        "us",
        "very",
        "via",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "able",
        "apply",
        "applicants",
        "applying",
        "candidate",
        "candidates",
        "company",
        "day",
        "days",
        "including",
        "job",
        "join",
        "looking",
        "new",
        "opportunity",
        "position",
        "role",
        "team",
        "teams",
        "well",
        "work",
        "working",
        "year",
        "years",
        "you'll",
        "we're",
        "you're",
        "it's",
    ]
)


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def candidates(text: str, ngram_range: tuple[int, int] = (1, 3)) -> list[str]:
    """N-grams that neither start nor end with a stop word and hold no line break, in text order."""
    out: list[str] = []
    seen: set[str] = set()
    for line in re.split(r"[\n.;:!?()\[\]•]", text):
        toks = words(line)
        for n in range(ngram_range[0], ngram_range[1] + 1):
            for i in range(len(toks) - n + 1):
                gram = toks[i : i + n]
                if gram[0] in STOP_WORDS or gram[-1] in STOP_WORDS or len(gram[0]) < 2 or len(gram[-1]) < 2:
                    continue
                phrase = " ".join(gram)
                if phrase not in seen:
                    seen.add(phrase)
                    out.append(phrase)
    return out


def mmr(relevance: Sequence[float], similarity: Sequence[Sequence[float]], top_n: int, diversity: float) -> list[int]:
    """Indices chosen by maximal marginal relevance, best first."""
    n = len(relevance)
    if n == 0 or top_n <= 0:
        return []
    chosen = [max(range(n), key=lambda i: relevance[i])]
    while len(chosen) < min(top_n, n):
        rest = [i for i in range(n) if i not in chosen]
        best = max(
            rest,
            key=lambda i: (1 - diversity) * relevance[i] - diversity * max(similarity[i][j] for j in chosen),
        )
        chosen.append(best)
    return chosen


def _jaccard(a: str, b: str) -> float:
    sa, sb = set(a.split()), set(b.split())
    return len(sa & sb) / len(sa | sb)


class TfidfKeywordExtractor:
    """MMR over TF-IDF relevance; document frequencies are counted once over the corpus."""

    def __init__(self, corpus: Sequence[str], ngram_range: tuple[int, int] = (1, 3)) -> None:
        self.ngram_range = ngram_range
        self.df: Counter[str] = Counter()
        for doc in corpus:
            self.df.update(set(candidates(doc, ngram_range)))
        self.n_docs = max(len(corpus), 1)

    def extract(self, text: str, top_n: int = 10, diversity: float = 0.5, pool: int = 40) -> list[str]:
        counts = Counter()
        for line in re.split(r"[\n.;:!?()\[\]•]", text):
            toks = words(line)
            for n in range(self.ngram_range[0], self.ngram_range[1] + 1):
                for i in range(len(toks) - n + 1):
                    counts[" ".join(toks[i : i + n])] += 1
        cands = candidates(text, self.ngram_range)
        scores = {
            c: (1 + math.log(counts[c])) * math.log((1 + self.n_docs) / (1 + self.df.get(c, 0))) * len(c.split()) ** 0.5
            for c in cands
        }
        ranked = sorted(cands, key=lambda c: -scores[c])[:pool]
        if not ranked:
            return []
        top = scores[ranked[0]] or 1.0
        relevance = [scores[c] / top for c in ranked]
        similarity = [[_jaccard(a, b) for b in ranked] for a in ranked]
        return [ranked[i] for i in mmr(relevance, similarity, top_n, diversity)]
