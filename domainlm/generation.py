"""Generating postings from a title and keywords (or free text) with a fine-tuned folder.

Prompts are built by ``domainlm.template.format_prompt``, the function that formatted the training
rows, and generation goes through ``pipeline('text-generation', model=DIR)``, so what works here
works for any user of the saved folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domainlm.errors import UserError
from domainlm.template import format_prompt, is_record, parse_record

logger = logging.getLogger(__name__)


@dataclass
class Prompt:
    prompt: str
    title: str | None = None
    keywords: str | None = None


def prompts_from_file(path: str | Path, limit: int | None = None) -> list[Prompt]:
    """Prompts from a CSV/JSONL with ``title`` (+ ``keywords``) or ``prompt`` columns, or record rows.

    The ``validation.csv`` that prepare_jobs.py writes works as it is.
    """
    from domainlm.tables import read_table

    rows = read_table(path)
    out: list[Prompt] = []
    for r in rows:
        if r.get("title"):
            out.append(Prompt(format_prompt(r["title"], r.get("keywords")), r["title"], r.get("keywords") or ""))
        elif r.get("prompt"):
            out.append(Prompt(str(r["prompt"])))
        elif is_record(r.get("text")):
            rec = parse_record(r["text"])
            out.append(Prompt(format_prompt(rec.title, rec.keywords), rec.title, ", ".join(rec.keywords)))
        else:
            raise UserError(
                f"{path}: row {r['_line']}: needs a 'title' (and 'keywords'), a 'prompt' or a record 'text'"
            )
        if limit is not None and len(out) >= limit:
            break
    return out


def load_generator(model_dir: str | Path) -> Any:
    from transformers import pipeline

    from domainlm.modeling import WEIGHT_FILES

    path = Path(model_dir)
    if not (path / "config.json").is_file() or not any((path / f).is_file() for f in WEIGHT_FILES):
        raise UserError(f"--model_dir {model_dir}: not a model folder (needs config.json and model.safetensors)")
    return pipeline("text-generation", model=str(path))


def generate(generator: Any, prompts: list[str], max_new_tokens: int = 256, seed: int = 0, **kwargs: Any) -> list[str]:
    """One generated continuation (prompt excluded) per prompt; same seed, same output."""
    from transformers import set_seed

    from domainlm.modeling import context_length

    context = context_length(generator.model.config)
    tok = generator.tokenizer
    out = []
    for i, prompt in enumerate(prompts):
        n_prompt = len(tok(prompt)["input_ids"])
        budget = context - n_prompt
        if budget <= 0:
            raise UserError(f"prompt {i + 1} is {n_prompt} tokens, the model's whole context of {context}")
        new = min(max_new_tokens, budget)
        if new < max_new_tokens:
            logger.warning("prompt %d: max_new_tokens clipped to %d to fit the context of %d", i + 1, new, context)
        set_seed(seed + i)
        result = generator(prompt, max_new_tokens=new, return_full_text=False, **kwargs)
        out.append(result[0]["generated_text"])
    return out
