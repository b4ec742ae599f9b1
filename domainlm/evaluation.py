"""Does a fine-tuned folder write postings, and do the keywords steer them?

Text metrics (pure functions, exact on hand-made examples):

- **keyword coverage**: the share of a prompt's keywords found in a text. Matching rule: text and
  keyword are casefolded; a keyword matches as a whole phrase, i.e. not inside a longer word
  (``sql`` is not found in ``nosql``), and any run of whitespace in the text, line breaks included,
  matches the single spaces between the keyword's words (``care  planning`` across a line break counts).
  Limits: no stemming or plurals (``nurse`` is not found in ``nurses``), no synonyms, and punctuation
  must match exactly (``a/b testing`` is not ``a-b testing``; ``hands on`` is not ``hands-on``).
- **words**: runs of letters, digits and underscores (``\\w+``), casefolded; length counts them.
- **distinct-n** (Li et al., 2016): distinct n-grams over all n-grams, pooled over a set of texts
  (n-grams never cross from one text to the next).
- **repeated n-gram rate** (rep-n, Welleck et al., 2019): within one text, 1 - distinct n-grams / n-grams;
  0 for a text that never repeats a 4-gram, near 1 for a loop.

``run_evaluation`` generates from the same validation prompts twice, with keywords (conditioned) and
without (title-only: ``title<|SEP|><|SEP|>``), with the same seed per prompt; scores both (the text
after any ``<|SEP|>`` the model writes itself, see ``body_of``) and the real
validation bodies; scores the real bodies with teacher forcing after their own keywords, another
posting's and none (``keyword_use``: steering without sampling noise); computes validation perplexity
before and after fine-tuning; and writes
``report.md`` with its plots (``domainlm.report``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domainlm.errors import UserError
from domainlm.template import SEP_TOKEN, clean_keywords, format_prompt, is_record

if TYPE_CHECKING:
    from domainlm.generation import GenerationSettings

logger = logging.getLogger(__name__)

REP_N = 4  # rep-4: the n of the repeated n-gram rate
CONDITIONS = ("conditioned", "title_only", "reference")
OPENING_TOKENS = 16  # plain text: each validation text is continued from its first 16 tokens
INIT_SEED = 42  # the Trainer's default --seed, for folders whose all_results.json does not name one
EVAL_RESULTS_FILE = "eval_results.json"
EVAL_SAMPLES_FILE = "eval_samples.jsonl"
_WORD = re.compile(r"\w+")


# ---- text metrics ------------------------------------------------------------------------------


def body_of(generated: str) -> str:
    """The part of a generated text that is scored: after its last ``<|SEP|>`` when it wrote one.

    Given ``title<|SEP|><|SEP|>``, a model trained on rows that all had keywords often writes a keyword
    list and a separator of its own before the body; that list is not the posting.
    """
    return generated.rsplit(SEP_TOKEN, 1)[-1]


def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """The whole-phrase, case- and whitespace-insensitive pattern of one keyword (see module docstring)."""
    parts = [re.escape(p) for p in keyword.casefold().split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(parts) + r"(?!\w)")


def keyword_hits(keywords: Iterable[str] | str | None, text: str) -> dict[str, bool]:
    """Each keyword (cleaned as in the prompt: split on commas, stripped, deduplicated) -> found in ``text``."""
    folded = text.casefold()
    return {kw: keyword_pattern(kw).search(folded) is not None for kw in clean_keywords(keywords)}


def keyword_coverage(keywords: Iterable[str] | str | None, text: str) -> float | None:
    """Share of the keywords found in ``text``; None when there are no keywords to find."""
    hits = keyword_hits(keywords, text)
    return sum(hits.values()) / len(hits) if hits else None


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Iterable[str], n: int) -> float | None:
    """Distinct n-grams / all n-grams, pooled over ``texts``; None when they hold no n-gram."""
    grams = [g for t in texts for g in ngrams(words(t), n)]
    return len(set(grams)) / len(grams) if grams else None


def repeated_ngram_rate(text: str, n: int = REP_N) -> float | None:
    """1 - distinct n-grams / n-grams within one text; None for a text shorter than n words."""
    grams = ngrams(words(text), n)
    return 1 - len(set(grams)) / len(grams) if grams else None


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def summarise(texts: Sequence[str], keywords: Sequence[str], stopped: Sequence[bool] | None = None) -> dict[str, Any]:
    """The metrics of one condition: texts[i] was written for keywords[i]."""
    coverage = [keyword_coverage(k, t) for k, t in zip(keywords, texts, strict=True)]
    scored = [c for c in coverage if c is not None]
    return {
        "samples": len(texts),
        "keyword_coverage": _mean(scored),
        "keyword_coverage_median": statistics.median(scored) if scored else None,
        "keyword_coverage_per_sample": coverage,
        **text_quality(texts, stopped),
    }


def text_quality(texts: Sequence[str], stopped: Sequence[bool] | None = None) -> dict[str, Any]:
    """Length, variety and repetition of a set of texts, and the share that ended at end-of-text."""
    return {
        "words": _mean(len(words(t)) for t in texts),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        f"repeated_{REP_N}gram_rate": _mean(repeated_ngram_rate(t) for t in texts),
        "stopped_at_eos": (sum(stopped) / len(stopped)) if stopped else None,
    }


# ---- perplexity --------------------------------------------------------------------------------


def perplexity_of(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 8) -> float:
    """exp(mean cross-entropy per predicted token) over ``tokens(text) + [eos]`` for each text.

    Token-weighted over the whole set, as the training's ``eval_loss`` is (``DomainTrainer.evaluate``);
    the two differ where training evaluated other blocks (``concat`` mode, dropped over-long records).
    Texts longer than the context are cut to it.
    """
    import math

    from domainlm.metrics import perplexity

    loss = body_loss(model, tokenizer, [("", t) for t in texts], batch_size)  # no prompt: the whole text is the body
    return float("nan") if math.isnan(loss) else perplexity(loss)


def body_loss(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 8) -> float:
    """Mean cross-entropy per token of each body (and its end-of-text), read after its prompt.

    ``pairs`` are ``(prompt, body)``; token-weighted over the set. Prompt and body are tokenised apart,
    as generation sees them; a pair longer than the context loses the end of its body.
    """
    import torch

    from domainlm.modeling import context_length

    context = context_length(model.config)
    eos = tokenizer.eos_token_id
    seqs = []
    for prompt, body in pairs:
        head = tokenizer(prompt, add_special_tokens=False, verbose=False)["input_ids"]  # cut below, not warned about
        tail = tokenizer(body, add_special_tokens=False, verbose=False)["input_ids"]
        tail = [*tail, eos][: max(context - len(head), 0)]
        seqs.append((head, tail))
    total, count = 0.0, 0
    for k in range(0, len(seqs), batch_size):
        batch = seqs[k : k + batch_size]
        width = max(len(h) + len(t) for h, t in batch)
        ids = torch.tensor([h + t + [eos] * (width - len(h) - len(t)) for h, t in batch], device=model.device)
        mask = torch.tensor([[1] * (len(h) + len(t)) + [0] * (width - len(h) - len(t)) for h, t in batch])
        labels = torch.tensor(
            [[-100] * len(h) + t + [-100] * (width - len(h) - len(t)) for h, t in batch], device=model.device
        )
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask.to(model.device), use_cache=False).logits.float()
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += loss.item()
        count += int((labels[:, 1:] != -100).sum())
    return total / count if count else float("nan")


def keyword_use(model: Any, tokenizer: Any, prompts: Sequence[EvalPrompt]) -> dict[str, float] | None:
    """Does the model read the keywords? The real bodies' loss after three prompts (teacher forcing).

    ``own``: the posting's title and keywords; ``other``: its title with the keywords of the next prompt
    (the first, for the last) whose keywords differ; ``none``: its title alone. A model that uses the
    keywords scores ``own`` < ``none`` < ``other``; one that ignores them scores all three alike. Sampling
    noise does not enter, so this shows steering long before keyword coverage does. None without
    real bodies, or with fewer than two distinct keyword lists.
    """
    usable = [p for p in prompts if p.reference]
    lists = [clean_keywords(p.keywords) for p in usable]
    if len({tuple(k) for k in lists}) < 2:
        return None
    n = len(usable)
    other = [next(lists[(i + j) % n] for j in range(1, n) if lists[(i + j) % n] != lists[i]) for i in range(n)]
    prompt_sets = {
        "own": [format_prompt(p.title, k) for p, k in zip(usable, lists, strict=True)],
        "other": [format_prompt(p.title, k) for p, k in zip(usable, other, strict=True)],
        "none": [format_prompt(p.title, []) for p in usable],
    }
    bodies = [p.reference for p in usable]
    out = {
        name: body_loss(model, tokenizer, list(zip(texts, bodies, strict=True))) for name, texts in prompt_sets.items()
    }
    out["bodies"] = n
    return out


def base_model(base: str, model_dir: Path, tokenizer: Any) -> tuple[Any, str]:
    """The model before fine-tuning, and a description of it.

    ``init``: the weights a run from scratch (launch.sh's default) started from. They are rebuilt as
    training built them: the seed of the run (``all_results.json``; the Trainer's default 42 when it is
    not there), one row per token of the tokenizer, then any rows the run padded the embeddings with.
    Under ZeRO-3, DeepSpeed initialises the partitioned weights in its own order: for such a run this is
    a fresh initialisation with the same seed, not its exact starting point.
    Otherwise a folder or hub name, loaded as training loaded it (embeddings resized to the fine-tuned
    tokenizer, whose added tokens keep the same ids).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, set_seed

    if base == "init":
        seed = run_seed(model_dir)
        config = AutoConfig.from_pretrained(model_dir)
        rows = config.vocab_size
        config.vocab_size = min(rows, len(tokenizer))
        set_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
        if rows > config.vocab_size:
            model.resize_token_embeddings(rows)
        return model.eval(), f"the same architecture, freshly initialised with seed {seed} (`--base_model init`)"
    from domainlm.args import ModelArguments
    from domainlm.modeling import load_model, load_tokenizer, match_tokenizer

    args = ModelArguments(model_name_or_path=base)
    with _as_base_model_flag():
        model = load_model(args, load_tokenizer(args))
    match_tokenizer(model, tokenizer)  # rows for every id of the fine-tuned tokenizer, as training resized them
    return model.eval(), f"`{base}`"


def run_seed(model_dir: Path) -> int:
    """The seed of the run (``all_results.json``), else the Trainer's default."""
    seed = (read_json_or_none(model_dir / "all_results.json") or {}).get("seed", INIT_SEED)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(
            f"{model_dir / 'all_results.json'}: its seed {seed!r} is not a whole number 0 or more; fix or remove "
            "that entry, or pass --base_model none"
        )
    return seed


@contextlib.contextmanager
def _as_base_model_flag() -> Iterator[None]:
    """The loaders name ``--model_name_or_path`` in their errors (a damaged file of the folder included:
    ``domainlm.modeling``); here the flag is ``--base_model``."""
    try:
        yield
    except UserError as err:
        raise UserError(str(err).replace("--model_name_or_path", "--base_model", 1)) from None


def started_from(base: str | None, model_dir: Path) -> str | None:
    """``init`` for a run that started from a model (recorded in all_results.json) is that model, not a
    fresh initialisation: the weights training started from, as for a run from scratch. A UserError
    names both when that model cannot be loaded here."""
    start = (
        (read_json_or_none(model_dir / "all_results.json") or {}).get("model_name_or_path") if base == "init" else None
    )
    if not start:
        return base
    try:
        check_base_model(start)  # not compared with the folder's tokenizer: training may have used another
    except UserError as err:
        raise UserError(
            f"--base_model init: {model_dir} was fine-tuned from {start} (its all_results.json), which cannot be "
            f"loaded here ({err}); pass that model's folder or hub name with --base_model, or none"
        ) from None
    logger.info("--base_model init: %s was fine-tuned from %s, the model before", model_dir, start)
    return start


def check_base_model(base: str | None, tokenizer: Any = None, model_dir: str | Path | None = None) -> None:
    """Before anything is generated: one line naming ``--base_model`` when it cannot be loaded. Its
    config and tokenizer are read now (from the hub for a hub name), and a folder must hold weights.
    With ``tokenizer`` (the fine-tuned folder's, ``model_dir``'s): one line when the base model's tokenizer
    gives its tokens other ids, as its perplexity on the fine-tuned tokenizer's ids would mean nothing."""
    if base is None or base == "init":
        return
    from domainlm.args import ModelArguments
    from domainlm.modeling import WEIGHT_FILES, load_config, load_tokenizer

    args = ModelArguments(model_name_or_path=base)
    with _as_base_model_flag():
        load_config(args)
        base_tokenizer = load_tokenizer(args)
    if tokenizer is not None:
        ours = tokenizer.get_vocab()
        moved = sorted((i, t) for t, i in base_tokenizer.get_vocab().items() if ours.get(t) != i)
        if moved:
            i, t = moved[0]
            raise UserError(
                f"--base_model {base}: its tokenizer is not the one of --model_dir {model_dir} (ids differ for "
                f"{len(moved)} of its {len(base_tokenizer)} tokens, e.g. {t!r}: {i} there, {ours.get(t)} here), "
                "so its perplexity would mean nothing; give the model training started from (init finds it in "
                "all_results.json), or none"
            )
    if Path(base).is_dir() and not any((Path(base) / f).is_file() for f in WEIGHT_FILES):
        raise UserError(
            f"--base_model {base}: the folder holds no weights; give the model training started from, "
            "init (a model trained from scratch), or none"
        )


# ---- the evaluation run ------------------------------------------------------------------------


@dataclass
class EvalPrompt:
    title: str
    keywords: str
    reference: str | None
    line: Any = None  # the row's ``_line`` in the validation file, for errors


def eval_prompts(path: str | Path, limit: int | None = None) -> tuple[list[EvalPrompt], int]:
    """Prompts with keywords from a validation file, and how many rows were skipped for having none."""
    from domainlm.generation import prompts_from_file

    prompts = prompts_from_file(path)
    if any(p.title is None for p in prompts):
        raise UserError(f"{path}: evaluation needs job records (title and keywords columns, or record 'text')")
    kept = [EvalPrompt(p.title, p.keywords, p.reference, p.line) for p in prompts if p.keywords]
    skipped = len(prompts) - len(kept)
    if not kept:
        raise UserError(f"{path}: no row has keywords, so keyword coverage cannot be measured")
    return kept[:limit] if limit is not None else kept, skipped


def is_plain_text(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether a validation file's rows (``read_table``) are plain text (text2csv.py's: a poem, a joke), not job
    records."""
    texts = [r.get("text") for r in rows]
    return any(texts) and not any(
        r.get("title") or (isinstance(t, str) and is_record(t)) for r, t in zip(rows, texts, strict=True)
    )


@dataclass
class Opening:
    prompt: str  # the first tokens of a validation text, cut between whole characters
    reference: str  # the rest of that text


def openings(texts: Sequence[str], tokenizer: Any, n_tokens: int = OPENING_TOKENS) -> list[Opening]:
    """Each text split after its first ``n_tokens`` tokens (at most half of them, so that something is
    left to continue), moved back to the end of a word when one ends in the second half of the opening
    (text without spaces, such as Chinese: to the end of a whole character); texts of one token are left out."""
    from domainlm.generation import unfinished_char_bytes

    out = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        k = min(n_tokens, len(ids) // 2)
        word_end = next((j for j in range(k, k // 2, -1) if tokenizer.decode(ids[j : j + 1])[:1].isspace()), None)
        k = word_end or k
        while k > 0 and unfinished_char_bytes(tokenizer, ids[:k]):
            k -= 1
        if k > 0:
            out.append(Opening(tokenizer.decode(ids[:k]), tokenizer.decode(ids[k:])))
    return out


def continued_openings(
    texts: Sequence[str], tokenizer: Any, limit: int | None, source: str | Path
) -> tuple[list[Opening], int]:
    """The first ``limit`` openings of ``texts`` to continue, and how many texts were too short for one."""
    opens = openings(texts, tokenizer)
    if not opens:
        raise UserError(f"{source}: no text is longer than one token; nothing to continue")
    return opens[:limit], len(texts) - len(opens)


def validation_texts(rows: Sequence[dict[str, Any]], path: str | Path = "validation file") -> list[str]:
    """The ``text`` column of a validation file's rows (``read_table``), line endings normalised as training
    reads it; a cell that is not text (a JSON object) is a UserError naming ``path`` and the row."""
    from domainlm.tables import cell_text

    texts = [t for r in rows if (t := cell_text(path, r, "text"))]
    return [t.replace("\r\r\n", "\n").replace("\r\n", "\n").replace("\r", "\n") for t in texts]


def read_json_or_none(path: Path) -> dict[str, Any] | None:
    """A JSON object file of the model folder (all_results.json, trainer_state.json); None when there is none."""
    import json

    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err}); was training interrupted while writing it?") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a JSON object, found a {type(obj).__name__}; is it the file training wrote?")
    return obj


def _trainer_state(model_dir: Path) -> dict[str, Any] | None:
    """``trainer_state.json`` of the folder, its ``log_history`` a list of objects (checked before any work)."""
    path = model_dir / "trainer_state.json"
    state = read_json_or_none(path)
    history = (state or {}).get("log_history", [])
    if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
        raise UserError(f"{path}: its log_history is not a list of objects; is it the file training wrote?")
    return state


def run_evaluation(
    model_dir: str | Path,
    validation_file: str | Path,
    output_dir: str | Path,
    settings: GenerationSettings,
    num_prompts: int | None = None,
    base: str | None = "init",
    progress: bool = True,
    revision: str | None = None,
) -> dict[str, Any]:
    """Generate, score, compute perplexities and write ``eval_results.json``, ``eval_samples.jsonl``
    and ``report.md`` (with its PNGs) into ``output_dir``. Returns the results. ``model_dir`` may be a
    model hub name (``revision``: its branch, tag or commit).

    Job records are generated with and without their keywords (``evaluate_postings``); plain text, as
    text2csv.py writes it, is continued from each validation text's opening (``evaluate_plain_text``).
    """
    from domainlm.generation import PromptTooLongError, check_model_dir, load_model_dir, local_model_dir
    from domainlm.report import COVERAGE_PNG, LOSS_PNG, REPORT_FILE, write_report, write_text_report
    from domainlm.tables import (
        check_inputs_are_not_outputs,
        read_table,
        row_at,
        staged_outputs,
        write_json,
        write_jsonl,
    )

    output_dir = Path(output_dir)
    if num_prompts is not None and num_prompts < 1:
        raise UserError(f"--num_prompts {num_prompts}: must be at least 1")
    names = (EVAL_RESULTS_FILE, EVAL_SAMPLES_FILE, LOSS_PNG, COVERAGE_PNG, REPORT_FILE)  # the report last
    check_inputs_are_not_outputs([validation_file], output_dir, names)
    rows = read_table(validation_file)
    plain, texts = is_plain_text(rows), validation_texts(rows, validation_file)
    prompts, skipped = ([], 0) if plain else eval_prompts(validation_file, num_prompts)
    model_dir = local_model_dir(model_dir, revision=revision)  # a hub name: downloaded once the inputs are good
    check_model_dir(model_dir)
    read_json_or_none(model_dir / "all_results.json")  # a damaged one is said now, not after the generation
    trainer_state = _trainer_state(model_dir)
    if base == "init":
        run_seed(model_dir)
    start = started_from(base, model_dir)  # init: the model a fine-tuning run started from, if any
    earlier = earlier_evaluation(output_dir)  # an evaluation written there before: its plots go if not redrawn
    with staged_outputs(output_dir) as staged:  # nothing in output_dir changes unless every file is written
        model, tokenizer = load_model_dir(model_dir, progress=progress)
        # a model given with --base_model must share the tokenizer; the one training started from may not
        check_base_model(start, tokenizer if start == base else None, model_dir)
        try:
            if plain:
                results, samples = evaluate_plain_text(
                    model, tokenizer, texts, validation_file, settings, num_prompts, progress
                )
            else:
                results, samples = evaluate_postings(model, tokenizer, prompts, settings, progress)
        except PromptTooLongError as err:
            if plain:
                raise
            p = prompts[err.index % len(prompts)]
            raise UserError(
                f"{validation_file}: {row_at(validation_file, p.line)}: its prompt (title and keywords) is "
                f"{err.tokens} tokens, the model's whole context of {err.context}; shorten them, or leave the row out"
            ) from None
        if not plain:
            results["keyword_use"] = keyword_use(model, tokenizer, prompts)
        results["perplexity"] = perplexities(model, tokenizer, model_dir, texts, start, progress)
        results.update(
            model_dir=str(model_dir),
            parameters=sum(p.numel() for p in model.parameters()),
            validation_file=str(validation_file),
            prompts=len(prompts) if not plain else results["prompts"],
            settings=settings.as_dict(),
        )
        if not plain:
            results["skipped_without_keywords"] = skipped
        write_json(staged.file(EVAL_RESULTS_FILE), results)
        write_jsonl(staged.file(EVAL_SAMPLES_FILE), samples)
        (write_text_report if plain else write_report)(staged.folder, results, samples, trainer_state)
        for name in names[2:]:  # the plots and the report, written above into the staging folder
            staged.file(name)
        fresh = {name for name in names if (staged.folder / name).exists()}
    for name in set(earlier) - fresh:  # e.g. the loss curve of a folder that has no trainer_state.json now
        (output_dir / name).unlink(missing_ok=True)
    return results


def earlier_evaluation(folder: str | Path) -> list[str]:
    """The names of the files that ``run_evaluation`` wrote into ``folder``, its ``report.md`` last.

    The report is written last and recognised by its text (``domainlm.report.is_report``); with it go the
    files it names (its plots, ``eval_results.json``, ``eval_samples.jsonl``) that are not newer than it,
    so none that someone put in their place since. Without such a report: none, and files of the same
    names are left alone (not known to be an evaluation's).
    """
    from domainlm.report import COVERAGE_PNG, LOSS_PNG, REPORT_FILE, is_report

    folder = Path(folder)
    report = folder / REPORT_FILE
    try:
        written = report.stat().st_mtime
        text = report.read_text(encoding="utf-8") if report.is_file() else ""
    except (OSError, UnicodeDecodeError):  # none, a folder of that name, or not a text
        return []
    if not is_report(text):
        return []
    names = []
    for name in (EVAL_RESULTS_FILE, EVAL_SAMPLES_FILE, LOSS_PNG, COVERAGE_PNG):
        path = folder / name
        named = f"({name})" in text or f"`{name}`" in text  # a plot's link, or "Per-sample values: `...`"
        if named and path.is_file() and path.stat().st_mtime <= written:
            names.append(name)
    return [*names, REPORT_FILE]


def perplexities(
    model: Any, tokenizer: Any, model_dir: Path, val_texts: list[str], base: str | None, progress: bool = True
) -> dict:
    """Validation perplexity after fine-tuning, before (``base``), and training's own figures."""
    from domainlm.generation import loading_bars

    out: dict[str, Any] = {}
    if val_texts:
        out["texts"] = len(val_texts)
        out["after"] = perplexity_of(model, tokenizer, val_texts)
        if base:
            with loading_bars(progress):
                before, what = base_model(base, model_dir, tokenizer)
            out["before"] = perplexity_of(before.to(model.device), tokenizer, val_texts)
            out["base_model"] = what
            del before
    all_results = read_json_or_none(model_dir / "all_results.json") or {}
    if "eval_perplexity" in all_results:
        out["training_eval"] = all_results["eval_perplexity"]
    if "eval_before_perplexity" in all_results:
        out["training_eval_before"] = all_results["eval_before_perplexity"]
    if "training_eval" in out and all_results.get("loss_on", "all") != "all":
        out["training_eval_loss_on"] = all_results["loss_on"]  # training evaluated the bodies alone
    return out


def evaluate_postings(
    model: Any, tokenizer: Any, prompts: list[EvalPrompt], settings: GenerationSettings, progress: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Each prompt generated with its keywords and with the title only, same seed; the results and samples."""
    from domainlm.generation import generate_batch

    n = len(prompts)
    texts = {
        "conditioned": [format_prompt(p.title, p.keywords) for p in prompts],
        "title_only": [format_prompt(p.title, []) for p in prompts],
    }
    # one call, so batches fill up; prompt i gets seed + i in both conditions (a paired comparison)
    seeds = [settings.seed + i for i in range(n)] * 2
    logger.info("generating %d prompts x 2 conditions (conditioned, title-only)", n)
    outputs = generate_batch(
        model, tokenizer, texts["conditioned"] + texts["title_only"], settings, seeds=seeds, progress=progress
    )
    per = settings.num_return_sequences
    gens = {"conditioned": outputs[: n * per], "title_only": outputs[n * per :]}
    keywords = [p.keywords for p in prompts for _ in range(per)]
    results: dict[str, Any] = {"conditions": {}}
    for cond, outs in gens.items():
        results["conditions"][cond] = summarise([body_of(g.text) for g in outs], keywords, [g.stopped for g in outs])
    references = [p.reference for p in prompts if p.reference is not None]
    if len(references) == n:
        results["conditions"]["reference"] = summarise(references, [p.keywords for p in prompts])
    cond, title = results["conditions"]["conditioned"], results["conditions"]["title_only"]
    results["coverage_ratio"] = (
        cond["keyword_coverage"] / title["keyword_coverage"] if title["keyword_coverage"] else None
    )
    samples = []
    for cond, outs in gens.items():
        for g in outs:
            p, body = prompts[g.index % n], body_of(g.text)
            samples.append(
                {
                    "condition": cond,
                    "title": p.title,
                    "keywords": p.keywords,
                    "prompt": texts[cond][g.index % n],
                    "generated": g.text,
                    "body": body,
                    "seed": g.seed,
                    "return_index": g.return_index,
                    "keyword_hits": keyword_hits(p.keywords, body),
                    "keyword_coverage": keyword_coverage(p.keywords, body),
                    "words": len(words(body)),
                    f"repeated_{REP_N}gram_rate": repeated_ngram_rate(body),
                    "stopped_at_eos": g.stopped,
                }
            )
    return results, samples


def evaluate_plain_text(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    validation_file: str | Path,
    settings: GenerationSettings,
    num_prompts: int | None,
    progress: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Each validation text continued from its opening (``openings``), scored against the text's real rest."""
    from domainlm.generation import generate_batch

    opens, skipped = continued_openings(texts, tokenizer, num_prompts, validation_file)
    n = len(opens)
    logger.info(
        "continuing %d validation text%s from their first tokens (at most %d)", n, "" if n == 1 else "s", OPENING_TOKENS
    )
    outputs = generate_batch(model, tokenizer, [o.prompt for o in opens], settings, progress=progress)
    results: dict[str, Any] = {
        "kind": "plain_text",
        "prompts": n,
        "opening_tokens": OPENING_TOKENS,
        "skipped_too_short": skipped,
        "conditions": {
            "continued": text_quality([g.text for g in outputs], [g.stopped for g in outputs]),
            "reference": text_quality([o.reference for o in opens]),
        },
    }
    samples = [
        {
            "condition": "continued",
            "prompt": opens[g.index].prompt,
            "generated": g.text,
            "reference": opens[g.index].reference,
            "seed": g.seed,
            "return_index": g.return_index,
            "words": len(words(g.text)),
            f"repeated_{REP_N}gram_rate": repeated_ngram_rate(g.text),
            "stopped_at_eos": g.stopped,
        }
        for g in outputs
    ]
    return results, samples
