#!/usr/bin/env python
"""Turn raw job postings into training rows ``title<|SEP|>kw1, kw2<|SEP|>posting text``.

    python prepare_jobs.py --input data/jobs_sample.csv --output_dir work/data --length_unit words --max_tokens 700
    python prepare_jobs.py --input linkedin.pkl --output_dir work/data --tokenizer gpt2 --max_tokens 1024
    python prepare_jobs.py --input postings.jsonl --output_dir work/data --reextract --keyword_backend tfidf \\
        --top_n 8 --ngram_range 1 2 --diversity 0.3
    python prepare_jobs.py --input export.csv --encoding cp1252 --output_dir work/data   # a CSV saved on Windows

Keywords are kept where the data has them and extracted by maximal marginal relevance where it has
none (or everywhere with --reextract): with a sentence-transformers model through KeyBERT
(`pip install -r requirements-keywords.txt`; the default model is the bundled all-MiniLM-L6-v2), or
with --keyword_backend tfidf, which needs no model. The default, --keyword_backend auto, takes the
first where it is installed and tfidf otherwise (and says so). On a shared machine whose cores are
busy, OMP_NUM_THREADS=1 runs the sentence-transformers backend about twice as fast: torch's threads
wait on each other when one of them is not scheduled (docs/benchmarks.md).

Writes DIR/train.csv and DIR/validation.csv (columns text, title, keywords) and DIR/prepare_stats.json,
and prints what it kept and dropped; for the first command above with --keyword_backend tfidf:

    read 240 postings from data/jobs_sample.csv; kept 214
    dropped: missing title or text 0, duplicate 0, too short 0, too long 26
    keywords: 190 kept postings had theirs, 24 got them from tfidf (24 extracted in 0.92s); per posting mean 6.93 (min 4, max 10)
    train: 193 rows, 68,342 words; per row min 134 / p50 313 / p90 607 / max 700
    validation: 21 rows, 6,432 words; per row min 158 / p50 250 / p90 518 / max 603
"""

import sys

from domainlm.errors import run_cli


def main(argv=None):
    from domainlm.jobs import parse_arguments, prepare_jobs, summary

    args = parse_arguments(argv, description=__doc__)
    stats = prepare_jobs(args)
    print(summary(stats), flush=True)
    print(f"wrote {', '.join(f'{args.output_dir}/{name}' for name in stats['outputs'])}", flush=True)


if __name__ == "__main__":
    sys.exit(run_cli(main))
