#!/usr/bin/env python
"""Turn raw job postings into training rows ``title<|SEP|>kw1, kw2<|SEP|>posting text``.

    python prepare_jobs.py --input data/jobs_sample.csv --output_dir work/data --length_unit words --max_tokens 700
    python prepare_jobs.py --input linkedin.pkl --output_dir work/data --tokenizer gpt2 --max_tokens 1024

Writes DIR/train.csv and DIR/validation.csv (columns text, title, keywords) and DIR/prepare_stats.json,
and prints what it kept and dropped, e.g.:

    read 240 postings from data/jobs_sample.csv; kept 236
    dropped: missing title or text 0, duplicate 0, too short 0, too long 4
"""

import sys

from domainlm.errors import run_cli


def main(argv=None):
    from transformers import HfArgumentParser

    from domainlm.jobs import PrepareArguments, prepare_jobs, summary

    parser = HfArgumentParser(PrepareArguments, description=__doc__)
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    print(summary(prepare_jobs(args)), flush=True)


if __name__ == "__main__":
    sys.exit(run_cli(main))
