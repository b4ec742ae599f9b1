#!/usr/bin/env python
"""Generated tokens per second: batched, left-padded generation versus one ``pipeline`` call per prompt.

    python bench/generation_throughput.py --model_dir work/finetuned --prompts_file work/data/validation.csv
    python bench/generation_throughput.py --model_dir work/finetuned --prompts_file work/data/validation.csv \\
        --num_prompts 16 --max_new_tokens 128 --batch_size 16 --threads 1 --strategies top_k_top_p greedy

Both ways get the same prompts (title + keywords from the validation file, built by
``domainlm.template.format_prompt``) and the same settings, in one run on one loaded model:

- ``pipeline``: ``pipeline('text-generation', model=DIR)`` called once per prompt, as a user of the
  saved folder would, with ``max_new_tokens`` and the strategy's parameters;
- ``batched``: ``domainlm.generation.generate_batch`` (what generate.py runs), ``--batch_size`` prompts
  at a time, padded on the left.

Generated tokens count everything written after the prompt, the end-of-text included. Under greedy
decoding both ways must write the same texts, which the script checks; under sampling they draw
differently, so the outputs (and their lengths) differ and tokens/s is the fair measure. The two run in
turn, ``--rounds`` times, order swapped each round, so machine noise falls on both; the figure is the
total over rounds. Prints one line per strategy and way, then the speed-up per strategy, e.g.

    | strategy | way | prompts | generated tokens | seconds | tokens/s |
    top_k_top_p: batched / pipeline = 5.1x tokens/s (goal 4x)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/generation_throughput.py` from anywhere finds domainlm

GOAL = 4.0


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", default="work/finetuned", help="folder written by run_clm.py")
    p.add_argument("--prompts_file", default="work/data/validation.csv", help="CSV/JSONL of prompts")
    p.add_argument("--num_prompts", type=int, default=16, help="the first N prompts of the file (1+)")
    p.add_argument("--max_new_tokens", type=int, default=128, help="longest continuation in tokens")
    p.add_argument("--batch_size", type=int, default=16, help="prompts per batch for the batched way")
    p.add_argument("--strategies", nargs="+", default=["top_k_top_p", "greedy"], help="decoding strategies to time")
    p.add_argument("--rounds", type=int, default=1, help="times each way runs (order swapped each round; 1+)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    p.add_argument("--seed", type=int, default=0)
    return p


def pipeline_kwargs(settings) -> dict:
    """The same decoding, spelled as pipeline/generate keyword arguments."""
    kw = {"max_new_tokens": settings.max_new_tokens, "do_sample": settings.sampling, "num_beams": 1}
    if settings.sampling:
        kw.update(temperature=settings.temperature, top_k=settings.top_k or 0, top_p=settings.top_p or 1.0)
    if settings.strategy == "beam":
        kw.update(num_beams=settings.num_beams, early_stopping=True)
    return kw


def run_pipeline(generator, prompts: list[str], settings) -> tuple[int, float, list[str]]:
    from transformers import set_seed

    tok = generator.tokenizer
    kw = pipeline_kwargs(settings)
    tokens, texts = 0, []
    start = time.perf_counter()
    for i, prompt in enumerate(prompts):
        set_seed(settings.seed + i)
        out = generator(prompt, return_tensors=True, **kw)[0]["generated_token_ids"]
        new = list(out)[len(tok(prompt, add_special_tokens=False)["input_ids"]) :]
        tokens += len(new)  # stops right after end-of-text: it is the last token when there is one
        if new and new[-1] == tok.eos_token_id:
            new = new[:-1]
        texts.append(tok.decode(new, skip_special_tokens=True))
    return tokens, time.perf_counter() - start, texts


def run_batched(model, tok, prompts: list[str], settings) -> tuple[int, float, list[str]]:
    from domainlm.generation import generate_batch

    start = time.perf_counter()
    outs = generate_batch(model, tok, prompts, settings, progress=False)
    return sum(g.new_tokens for g in outs), time.perf_counter() - start, [g.text for g in outs]


def check_arguments(args: argparse.Namespace) -> list:
    """Every flag and path, before anything is loaded; returns the settings of each strategy."""
    from domainlm.errors import UserError
    from domainlm.generation import STRATEGIES, GenerationSettings, check_model_dir
    from domainlm.tokenizer import TOKENIZER_FILES, check_pretrained_name

    for flag in ("num_prompts", "rounds", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UserError(f"--{flag} {value}: must be at least 1")
    unknown = [s for s in args.strategies if s not in STRATEGIES]
    if unknown:
        raise UserError(f"--strategies {' '.join(unknown)}: choose from {', '.join(STRATEGIES)}")
    settings = [  # checks --max_new_tokens, --batch_size and --seed
        GenerationSettings(strategy=s, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed)
        for s in dict.fromkeys(args.strategies)
    ]
    # a path that is not there, a file, a folder without a tokenizer; then one without config.json or weights
    hint = "give a folder written by run_clm.py (launch.sh writes work/finetuned)"
    check_pretrained_name(args.model_dir, "--model_dir", "tokenizer", TOKENIZER_FILES, hint, local_only=True)
    check_model_dir(args.model_dir)
    prompts = Path(args.prompts_file)
    if prompts.is_dir():
        raise UserError(f"--prompts_file {prompts} is a folder; give a CSV or JSONL file of prompts")
    if not prompts.is_file():
        raise UserError(f"--prompts_file {prompts}: no such file; give a CSV or JSONL file of prompts")
    return settings


def main(argv: list[str] | None = None) -> dict:
    args = make_parser().parse_args(argv)
    all_settings = check_arguments(args)

    import logging

    import torch

    # pipeline's max_length notice, once per call; both put back for whoever called main (a test)
    transformers_logger, threads = logging.getLogger("transformers"), torch.get_num_threads()
    level = transformers_logger.level
    transformers_logger.setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return measure(args, all_settings)
    finally:
        transformers_logger.setLevel(level)
        torch.set_num_threads(threads)


def measure(args: argparse.Namespace, all_settings: list) -> dict:
    """Both ways of generating, strategy by strategy, in alternating order; the figures printed and returned."""
    import torch
    import transformers
    from transformers import pipeline

    from domainlm.errors import UserError
    from domainlm.generation import GenerationSettings, prompts_from_file

    prompts = [p.prompt for p in prompts_from_file(args.prompts_file, args.num_prompts)]
    if not prompts:
        raise UserError(f"--prompts_file {args.prompts_file}: no prompts in it")
    generator = pipeline("text-generation", model=args.model_dir, device="cpu")
    model, tok = generator.model.eval(), generator.tokenizer  # one model in memory, shared by both ways
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model {args.model_dir} ({n_params / 1e6:.1f}M parameters), {len(prompts)} prompts from {args.prompts_file}, "
        f"max_new_tokens {args.max_new_tokens}, batch {args.batch_size}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, {os.cpu_count()} CPUs), transformers {transformers.__version__}; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    warm = GenerationSettings(strategy="greedy", max_new_tokens=4, batch_size=args.batch_size)
    run_pipeline(generator, prompts[:1], warm)
    run_batched(model, tok, prompts[:2], warm)

    results: dict[str, dict] = {}
    print("| strategy | way | prompts | generated tokens | seconds | tokens/s |\n|---|---|---|---|---|---|")
    for settings in all_settings:
        strategy = settings.strategy
        ways = {
            "pipeline": lambda s=settings: run_pipeline(generator, prompts, s),
            "batched": lambda s=settings: run_batched(model, tok, prompts, s),
        }
        totals = {w: [0, 0.0] for w in ways}
        texts = {}
        for r in range(args.rounds):
            for way in list(ways)[:: 1 if r % 2 == 0 else -1]:
                tokens, seconds, texts[way] = ways[way]()
                totals[way][0] += tokens
                totals[way][1] += seconds
        rates = {}
        for way, (tokens, seconds) in totals.items():
            rates[way] = tokens / seconds
            print(
                f"| {strategy} | {way} | {len(prompts) * args.rounds} | {tokens:,} | {seconds:.1f} | {rates[way]:.1f} |",
                flush=True,
            )
        speedup = rates["batched"] / rates["pipeline"]
        same = texts["batched"] == texts["pipeline"]
        results[strategy] = {"rates": rates, "totals": totals, "speedup": speedup, "same_texts": same}
        if strategy in ("greedy", "beam") and not same:
            print(f"warning: {strategy}: batched and pipeline texts differ", flush=True)
        note = ", identical texts" if same else ""
        results[strategy]["line"] = f"{strategy}: batched / pipeline = {speedup:.1f}x tokens/s (goal {GOAL:g}x){note}"
    for r in results.values():
        print(r["line"])
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return results


if __name__ == "__main__":
    from domainlm.errors import run_cli

    sys.exit(run_cli(main))
