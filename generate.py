#!/usr/bin/env python
"""Generate job postings (or free text) with a fine-tuned folder.

    python generate.py --model_dir finetuned --title "Data Scientist" --keywords "python, sql, a/b testing"
    python generate.py --model_dir finetuned --prompts_file work/data/validation.csv --num_prompts 3
    python generate.py --model_dir finetuned --prompt "Shall I compare thee"

Prints each prompt and what the model wrote after it; ``--output FILE.jsonl`` also saves them.
"""

import argparse
import sys

from domainlm.errors import run_cli


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", required=True, help="folder written by run_clm.py")
    p.add_argument("--title", help="job title")
    p.add_argument("--keywords", default="", help="comma-separated keywords")
    p.add_argument("--prompt", help="free text to continue (plain-corpus models)")
    p.add_argument("--prompts_file", help="CSV/JSONL with title+keywords, prompt, or record text columns")
    p.add_argument("--num_prompts", type=int, default=None, help="use only the first N prompts of the file")
    p.add_argument("--max_new_tokens", type=int, default=256, help="longest continuation, in tokens")
    p.add_argument("--seed", type=int, default=0, help="same seed, same output")
    p.add_argument("--output", help="also write the results to this .jsonl file")
    return p


def main(argv=None):
    from domainlm.errors import UserError
    from domainlm.generation import Prompt, generate, load_generator, prompts_from_file
    from domainlm.template import format_prompt

    args = make_parser().parse_args(argv)
    if args.prompts_file:
        prompts = prompts_from_file(args.prompts_file, args.num_prompts)
    elif args.title:
        prompts = [Prompt(format_prompt(args.title, args.keywords), args.title, args.keywords)]
    elif args.prompt:
        prompts = [Prompt(args.prompt)]
    else:
        raise UserError("give --title (and --keywords), --prompt, or --prompts_file")
    generator = load_generator(args.model_dir)
    texts = generate(generator, [p.prompt for p in prompts], args.max_new_tokens, args.seed)
    rows = []
    for i, (p, text) in enumerate(zip(prompts, texts, strict=True), start=1):
        print(f"\n=== {i}. {p.prompt}\n{text.strip()}\n", flush=True)
        rows.append(
            {"prompt": p.prompt, "title": p.title, "keywords": p.keywords, "generated": text, "seed": args.seed + i - 1}
        )
    if args.output:
        from domainlm.tables import write_jsonl

        write_jsonl(args.output, rows)


if __name__ == "__main__":
    sys.exit(run_cli(main))
