"""The benchmark corpus: the real postings when ``../shared/data/jobs`` holds them, else the bundled sample.

Rows are made by the project's own preparation (``domainlm.jobs.prepare_jobs``: cleaning, duplicates,
keywords capped at 10, ``title<|SEP|>kw1, kw2<|SEP|>body`` through ``domainlm.template.format_record``),
read back with the training loader, and tokenised by a byte-level BPE trained on them (or a local
tokenizer folder), so the benchmark sees exactly the rows and tokens that training would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

ROOT = Path(__file__).resolve().parents[1]
SHARED_JOBS = ROOT.parent / "shared" / "data" / "jobs"
# The pickle first: a dict of dicts, the exact input format of the original job-postings project.
REAL_POSTINGS = (SHARED_JOBS / "linkedin_936.pkl", SHARED_JOBS / "linkedin_936.csv")
SAMPLE = ROOT / "data" / "jobs_sample.csv"


def default_source() -> Path:
    """The real postings when present, else the project's sample (written by this project)."""
    return next((p for p in REAL_POSTINGS if p.is_file()), SAMPLE)


def check_source(data: str | None) -> None:
    """A UserError, before any work, when ``--data`` is given and is no file."""
    from domainlm.errors import UserError

    if data is None:
        return
    if Path(data).is_dir():
        raise UserError(f"--data {data} is a folder; give a .pkl or .csv file of postings")
    if not Path(data).is_file():
        raise UserError(f"--data {data}: no such file; give a .pkl or .csv file of postings")


def prepare_rows(source: str | Path, output_dir: str | Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``prepare_jobs`` on ``source`` into ``output_dir/train.csv``: every kept posting, no validation split.

    Lengths are counted in words (no length filter here: rows over the block are dropped later, at
    tokenisation, exactly as training drops them); postings without keywords get TF-IDF ones, so no
    sentence-embedding model is loaded. Returns prepare_jobs' stats.
    """
    from domainlm.jobs import PrepareArguments, prepare_jobs

    args = PrepareArguments(
        input=str(source),
        output_dir=str(output_dir),
        keyword_backend="tfidf",
        length_unit="words",
        validation_fraction=0.0,
    )
    return prepare_jobs(args, log=log)


def load_rows(csv_path: str | Path, max_records: int | None = None, cache_dir: str | None = None) -> Dataset:
    """The prepared rows through the training loader (``text`` column); the first ``max_records`` only if set."""
    from domainlm.data import load_text_dataset

    ds = load_text_dataset(str(csv_path), cache_dir=cache_dir)
    if max_records is not None and max_records < len(ds):
        ds = ds.select(range(max_records))
    return ds


def get_tokenizer(
    texts: list[str], tokenizer_dir: str | None = None, vocab_size: int = 8000, model_max_length: int = 1024
) -> PreTrainedTokenizerBase:
    """A local tokenizer folder (given ``<|pad|>`` and ``<|SEP|>`` when it lacks them), or a new BPE on ``texts``."""
    from domainlm.tokenizer import ensure_special_tokens, train_bpe_tokenizer

    if tokenizer_dir:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        ensure_special_tokens(tokenizer)
        tokenizer.model_max_length = max(tokenizer.model_max_length or 0, model_max_length)
        return tokenizer
    return train_bpe_tokenizer(texts, vocab_size=vocab_size, model_max_length=model_max_length)
