#!/usr/bin/env python
"""Turn text into the train.csv and validation.csv (one ``text`` column) that run_clm.py reads.

As the GPT2-XL fine-tuning guide says: train.txt and validation.txt in the current folder become
train.csv and validation.csv there, each file one row:

    python text2csv.py

One example per paragraph of a text file, 10% of them held out for validation (seed 42):

    python text2csv.py corpus.txt --split paragraph --output_dir data/corpus

A folder of .txt files (recursive, sorted), one example per file, with validation files of its own:

    python text2csv.py books/ --validation heldout/ --output_dir data/books

A text file written on Windows (cp1252 rather than UTF-8; the CSVs are UTF-8 all the same), one example per
paragraph (one file alone is one example, too few to hold any out for validation):

    python text2csv.py notes.txt --encoding cp1252 --split paragraph --output_dir data/notes

The Joke column of two CSV files, one example per row, 5% held out:

    python text2csv.py onelinefun.csv reddit-cleanjokes.csv --column Joke --validation_fraction 0.05 \\
        --output_dir data/jokes

Long documents cut on paragraph (then line, sentence, token) boundaries into examples of at most
511 tokens of a local tokenizer (511 + the end-of-text token run_clm.py appends = a block of 512):

    python text2csv.py books/ --split tokens --max_tokens 511 --tokenizer tokenizer --output_dir data/books

Line endings become \\n and Unicode NFC; trailing whitespace, empty and duplicate examples are dropped.
Prints examples, characters and what was dropped (and why) per split, checks that the training
loader reads every example back unchanged, and writes DIR/text2csv_stats.json next to the CSVs.
"""

import argparse
import sys

from domainlm.errors import one_line_errors, run_cli


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="text files, folders of .txt files, or csv/json/jsonl files (with --column); "
        "none: train.txt and validation.txt of the current folder, as in the guide",
    )
    parser.add_argument("--output_dir", help="folder for train.csv, validation.csv, text2csv_stats.json (guide: .)")
    parser.add_argument("--validation", nargs="+", metavar="INPUT", help="validation inputs, same kinds as INPUT")
    parser.add_argument("--column", help="column that holds the text in csv/json inputs (default: text)")
    parser.add_argument(
        "--split",
        choices=["file", "line", "paragraph", "separator", "tokens"],
        help="one example per file (or table row; the default), line, paragraph (blank-line separated), "
        "piece between --separator, or run of paragraphs of at most --max_tokens tokens",
    )
    parser.add_argument("--separator", help="string between examples (implies --split separator); \\n, \\t allowed")
    parser.add_argument("--max_tokens", type=int, help="--split tokens: most tokens per example")
    parser.add_argument("--tokenizer", help="--split tokens: a local tokenizer folder (e.g. from create_tokenizer.py)")
    parser.add_argument(
        "--validation_fraction",
        type=float,
        help="share of examples held out for validation (default 0.1 with one INPUT and no --validation, else 0)",
    )
    parser.add_argument("--seed", type=int, default=42, help="chooses the held-out examples")
    parser.add_argument(
        "--encoding",
        default="utf-8",
        help="encoding of the text and csv/json inputs, e.g. cp1252 or latin-1 (default utf-8, a BOM is "
        "dropped); the outputs are always UTF-8",
    )
    parser.add_argument(
        "--no_repair_encoding",
        dest="repair_encoding",
        action="store_false",
        help="keep UTF-8 text that was once read as cp1252 or Latin-1 as it is (by default a document that shows "
        "it, e.g. itâ€™s, is repaired: it’s)",
    )
    return one_line_errors(parser)


def main(argv=None):
    from domainlm.text2csv import Text2CsvArgs, text2csv

    args = make_parser().parse_args(argv)
    text2csv(Text2CsvArgs(**vars(args)))


if __name__ == "__main__":
    sys.exit(run_cli(main))
