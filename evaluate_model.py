#!/usr/bin/env python
"""Evaluate a fine-tuned folder: keyword steering, text quality, perplexity; write report.md with plots.

    python evaluate_model.py --model_dir work/finetuned --validation_file work/data/validation.csv
    python evaluate_model.py --model_dir finetuned --validation_file validation.csv --base_model gpt2 \\
        --output_dir finetuned/eval --num_prompts 50 --max_new_tokens 400

Each validation prompt is generated twice, with its keywords and with the title only, with the same
seed; keyword coverage, length, distinct-1/2 and the repeated 4-gram rate are computed for both and for
the real validation bodies. A validation file of plain text (text2csv.py's: poems, jokes, any language)
has no keywords: each text is continued from its first 16 tokens instead, and the continuations are
scored against the texts' real rest (length, distinct-1/2, repeated 4-grams, stops at end-of-text).
Perplexity on validation is computed after and before fine-tuning
(``--base_model``: ``init`` = the weights a run from scratch started from, rebuilt with the run's seed;
else the folder or hub name training started from; ``none`` to skip). Writes into
``--output_dir`` (default: the model folder): report.md, loss.png, keyword_coverage.png,
eval_results.json, eval_samples.jsonl. Prints the headline figures.

Named evaluate_model.py, not evaluate.py, so that it never shadows the ``evaluate`` library.
"""

import argparse
import sys

from domainlm.errors import one_line_errors, run_cli
from domainlm.generation import add_generation_arguments


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model_dir", required=True, help="folder written by run_clm.py, or its model hub name (--push_to_hub)"
    )
    p.add_argument("--revision", help="a branch, tag or commit of a --model_dir hub name (--hub_revision of the push)")
    p.add_argument(
        "--validation_file", required=True, help="validation.csv of prepare_jobs.py or text2csv.py (or JSONL)"
    )
    p.add_argument("--output_dir", help="where report.md and its files go (default: --model_dir)")
    p.add_argument(
        "--num_prompts", type=int, default=None, help="only the first N prompts with keywords (plain text: N texts)"
    )
    p.add_argument(
        "--base_model",
        default="init",
        help="the model before: init (the weights training started from), a folder, hub name, none [init]",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_generation_arguments(p, max_new_tokens=400)
    return one_line_errors(p)


def main(argv=None):
    from domainlm.evaluation import run_evaluation
    from domainlm.generation import is_hub_name, settings_from_args

    args = make_parser().parse_args(argv)
    settings = settings_from_args(args)
    if not args.output_dir and is_hub_name(args.model_dir):
        from domainlm.errors import UserError

        raise UserError(
            f"--model_dir {args.model_dir}: no such folder; read as a model hub name, it needs --output_dir for "
            "report.md and its files"
        )
    base = None if args.base_model.lower() == "none" else args.base_model
    results = run_evaluation(
        args.model_dir,
        args.validation_file,
        args.output_dir or args.model_dir,
        settings,
        num_prompts=args.num_prompts,
        base=base,
        progress=not args.quiet,
        revision=args.revision,
    )
    conds, ppl = results["conditions"], results["perplexity"]
    if results.get("kind") == "plain_text":
        cont, ref = conds["continued"], conds["reference"]
        print(
            f"{results['prompts']} validation texts continued from their openings: {cont['words']:.0f} words on "
            f"average (the real rest: {ref['words']:.0f}), {cont['stopped_at_eos']:.0%} stopped at end-of-text"
        )
    else:
        cov = {c: conds[c]["keyword_coverage"] for c in conds}
        ratio = results["coverage_ratio"]
        print(
            f"keyword coverage over {results['prompts']} prompts: with keywords {cov['conditioned']:.1%}, "
            f"title only {cov['title_only']:.1%}"
            + (f", real bodies {cov['reference']:.1%}" if "reference" in cov else "")
            + (f"; ratio {ratio:.2f}x" if ratio is not None else "")
        )
    use = results.get("keyword_use")
    if use:
        print(
            f"real bodies' loss per token after their own keywords {use['own']:.4f}, another posting's "
            f"{use['other']:.4f}, the title alone {use['none']:.4f}"
        )
    if "after" in ppl:
        before = f"{ppl['before']:.1f} before, " if "before" in ppl else ""
        print(f"validation perplexity: {before}{ppl['after']:.2f} after fine-tuning")
    print(f"report: {(args.output_dir or args.model_dir).rstrip('/')}/report.md")
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
