#!/usr/bin/env python
"""Train a byte-level BPE tokenizer with <|endoftext|>, a distinct <|pad|> and <|SEP|>.

    python create_tokenizer.py --train_file train.csv --output_dir tokenizer --vocab_size 8000
    python create_tokenizer.py --dataset_name wikitext --dataset_config_name wikitext-2-raw-v1 --output_dir tokenizer

Prints the vocabulary size and the ids of the three tokens; the folder loads with
``AutoTokenizer.from_pretrained('tokenizer')`` and is what ``run_clm.py --tokenizer_name`` takes.
"""

import argparse
import sys

from domainlm.errors import one_line_errors, run_cli


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_file", nargs="+", help="csv/json/jsonl/txt files to learn from")
    parser.add_argument(
        "--dataset_name",
        help="or the train split of a dataset, as run_clm.py --dataset_name takes it (a hub name, a folder of data "
        "files, a save_to_disk folder)",
    )
    parser.add_argument("--dataset_config_name", help="the configuration of --dataset_name")
    parser.add_argument("--text_column", default="text", help="column with the text (csv/json, --dataset_name)")
    parser.add_argument("--output_dir", required=True, help="folder to write the tokenizer into")
    parser.add_argument(
        "--vocab_size", type=int, default=8000, help="tokens of the BPE, at least 258 (<|SEP|> comes on top)"
    )
    parser.add_argument("--min_frequency", type=int, default=2, help="merges seen fewer times are not learned (0+)")
    parser.add_argument("--model_max_length", type=int, default=1024, help="longest sequence the model takes (1+)")
    return one_line_errors(parser)


def main(argv=None):
    from domainlm.tokenizer import create_tokenizer

    args = make_parser().parse_args(argv)
    create_tokenizer(
        args.train_file,
        args.output_dir,
        args.text_column,
        args.vocab_size,
        args.min_frequency,
        args.model_max_length,
        args.dataset_name,
        args.dataset_config_name,
    )


if __name__ == "__main__":
    sys.exit(run_cli(main))
