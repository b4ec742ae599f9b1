#!/usr/bin/env python
"""Generate job postings (or free text) with a fine-tuned folder, in left-padded batches.

    python generate.py --model_dir finetuned --title "Data Scientist" --keywords "python, sql, a/b testing"
    python generate.py --model_dir finetuned --prompts_file work/data/validation.csv --num_prompts 3 \\
        --output samples.jsonl
    python generate.py --model_dir finetuned --prompts_file prompts.csv --strategy beam --num_beams 4 --output out.csv
    python generate.py --model_dir finetuned --prompt "The night train crossed" --strategy top_p --top_p 0.9 --seed 7

Each continuation runs until end-of-text or until the model's context is full (--max_new_tokens N: at
most N new tokens).

A --prompts_file of plain text (text2csv.py's rows: poems, jokes) gives each text's opening, its first
16 tokens at most, cut at the end of a word, as evaluate_model.py does.

Prints each prompt and what the model wrote after it. ``--output`` (.jsonl or .csv) also saves one row
per output: prompt, title, keywords, generated, reference (for a --prompts_file row that holds more
than the prompt: the real posting body, or the real rest of the text), seed, return_index, new_tokens,
stopped_at_eos and every generation setting, max_new_tokens the number used. A row's seed reproduces it: the
same prompt with ``--seed <row seed>``, ``--max_new_tokens <row max_new_tokens>`` and the same settings gives
the same text, alone or in any batch.
"""

import argparse
import sys

from domainlm.errors import one_line_errors, run_cli
from domainlm.generation import add_generation_arguments

OUTPUT_SUFFIXES = (".jsonl", ".csv")


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model_dir", required=True, help="folder written by run_clm.py, or its model hub name (--push_to_hub)"
    )
    p.add_argument("--revision", help="a branch, tag or commit of a --model_dir hub name (--hub_revision of the push)")
    p.add_argument("--title", help="job title")
    p.add_argument("--keywords", default="", help="comma-separated keywords")
    p.add_argument("--prompt", help="free text to continue (plain-corpus models)")
    p.add_argument("--prompts_file", help="CSV/JSONL: title+keywords, prompt, record text, or plain text columns")
    p.add_argument("--num_prompts", type=int, default=None, help="use only the first N prompts of the file")
    p.add_argument("--output", help="also write the results to this .jsonl or .csv file")
    p.add_argument("--quiet", action="store_true", help="print no texts and no progress bar")
    add_generation_arguments(p)
    return one_line_errors(p)


def main(argv=None):
    from domainlm.errors import UserError
    from domainlm.generation import (
        Prompt,
        PromptTooLongError,
        generate_batch,
        load_model_dir,
        prompts_from_file,
        settings_from_args,
    )
    from domainlm.tables import check_output_file, row_at
    from domainlm.template import KEYWORD_JOINER, SEP_TOKEN, clean_keywords, format_prompt

    args = make_parser().parse_args(argv)
    settings = settings_from_args(args)  # bad input fails here, before the model loads
    if args.output:
        check_output_file(args.output, "--output", OUTPUT_SUFFIXES)
    given = [flag for flag in ("--prompts_file", "--title", "--prompt") if getattr(args, flag[2:]) is not None]
    if len(given) > 1:
        raise UserError(f"{' and '.join(given)}: give only one of them")
    if args.num_prompts is not None and not args.prompts_file:
        raise UserError("--num_prompts counts the rows of --prompts_file; give one, or leave --num_prompts out")
    if args.num_prompts is not None and args.num_prompts < 1:
        raise UserError(f"--num_prompts {args.num_prompts}: must be at least 1")
    for flag in ("--title", "--prompt"):
        if getattr(args, flag[2:]) is not None and not getattr(args, flag[2:]).strip():
            raise UserError(f"{flag} is empty; give some text")
    plain = False
    if args.prompts_file and args.output:
        from pathlib import Path

        from domainlm.tables import check_inputs_are_not_outputs

        out = Path(args.output)
        check_inputs_are_not_outputs([args.prompts_file], out.parent, [out.name], "--output")
    if args.prompts_file:
        from domainlm.evaluation import is_plain_text, validation_texts
        from domainlm.tables import read_table

        table = read_table(args.prompts_file)
        plain = is_plain_text(table)  # text2csv.py's rows: continued from their openings, below
        texts = validation_texts(table, args.prompts_file) if plain else []
        prompts = [] if plain else prompts_from_file(args.prompts_file, args.num_prompts)
    elif args.title:
        for flag, value in (("--title", args.title), ("--keywords", args.keywords)):
            if value and SEP_TOKEN in value:
                raise UserError(f"{flag} {value!r}: {SEP_TOKEN} separates title, keywords and body; remove it")
        keywords = KEYWORD_JOINER.join(clean_keywords(args.keywords))
        prompts = [Prompt(format_prompt(args.title, keywords), args.title, keywords)]
    elif args.prompt:
        prompts = [Prompt(args.prompt)]
    else:
        raise UserError("give --title (and --keywords), --prompt, or --prompts_file")
    model, tokenizer = load_model_dir(args.model_dir, progress=not args.quiet, revision=args.revision)
    if plain:
        from domainlm.evaluation import continued_openings

        opens, _ = continued_openings(texts, tokenizer, args.num_prompts, args.prompts_file)
        prompts = [Prompt(o.prompt, reference=o.reference) for o in opens]
    try:
        outputs = generate_batch(model, tokenizer, [p.prompt for p in prompts], settings, progress=not args.quiet)
    except PromptTooLongError as err:
        line = prompts[err.index].line
        if line is None:
            raise
        raise UserError(
            f"{args.prompts_file}: {row_at(args.prompts_file, line)}: its prompt is {err.tokens} tokens, the model's "
            f"whole context of {err.context}; shorten its title and keywords (or its prompt)"
        ) from None
    rows = []
    for g in outputs:
        p = prompts[g.index]
        if not args.quiet:
            label = f"{g.index + 1}" + (f".{g.return_index + 1}" if settings.num_return_sequences > 1 else "")
            print(f"\n=== {label}. {p.prompt}\n{g.text.strip()}\n", flush=True)
        rows.append(
            {
                "prompt": p.prompt,
                "title": p.title,
                "keywords": p.keywords,
                "generated": g.text,
                "reference": p.reference,  # what the file's row holds after the prompt: the real body, or rest
                "seed": g.seed,
                "return_index": g.return_index,
                "new_tokens": g.new_tokens,
                "stopped_at_eos": g.stopped,
                **{k: v for k, v in settings.as_dict().items() if k != "seed"},  # the row's seed is above
                "max_new_tokens": g.max_new_tokens,  # the number used: clipped, or the room the context left
                "model_dir": str(args.model_dir),
            }
        )
    if args.output:
        from domainlm.tables import write_csv, write_jsonl

        try:
            if args.output.lower().endswith(".csv"):
                write_csv(args.output, rows, list(rows[0]))
            else:
                write_jsonl(args.output, rows)
        except OSError as err:  # the folder went read-only or full since the check: the texts were printed
            raise UserError(f"--output {args.output}: cannot write it ({err.strerror or err})") from None
    return rows


if __name__ == "__main__":
    sys.exit(run_cli(main))
