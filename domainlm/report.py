"""``report.md`` and its plots: what a person looks at after a run.

Two PNGs (matplotlib, Agg backend, so no display is needed): training and evaluation loss over
optimizer steps from ``trainer_state.json``, and the per-posting keyword coverage with keywords in the
prompt versus title only. Every file is written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domainlm.tables import atomic_write

REPORT_FILE = "report.md"
LOSS_PNG = "loss.png"
COVERAGE_PNG = "keyword_coverage.png"
_HEADING = "# Evaluation of `"  # the first line of both reports
_METHODS = "\n## How the figures are computed\n"  # and their last section
LABELS = {"conditioned": "title + keywords", "title_only": "title only", "reference": "real validation bodies"}
TEXT_LABELS = {"continued": "generated continuations", "reference": "the real rest of the texts"}
SAMPLE_WORDS = 120
# what a run with --loss_on body evaluated: not comparable with a perplexity over whole texts
BODY_ONLY = ", on the posting bodies and end-of-text alone: `--loss_on body`"


def _texts(n: int) -> str:
    return f"{n:,} validation text{'' if n == 1 else 's'}"


def is_report(text: str) -> bool:
    """Whether ``text`` is a report that ``write_report`` or ``write_text_report`` wrote (not a person's own)."""
    return text.startswith(_HEADING) and _METHODS in text


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())


def plot_loss(log_history: Sequence[dict[str, Any]], path: Path) -> bool:
    """Training loss (every logging step) and evaluation loss over steps; False when there is neither."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    evals = sorted(set(evals))  # the final evaluation repeats the last epoch's
    if not train and not evals:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="training loss", color="tab:blue")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="evaluation loss (validation)", color="tab:orange")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title("Loss during fine-tuning")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
    plt.close(fig)
    return True


def plot_coverage(conditioned: Sequence[float], title_only: Sequence[float], path: Path) -> None:
    """Side-by-side histograms of per-posting keyword coverage, with each condition's mean dashed."""
    import numpy as np

    plt = _pyplot()
    edges = np.linspace(0, 1, 11)
    width = 0.04
    fig, ax = plt.subplots(figsize=(7, 4))
    for shift, values, name, color in (
        (-width / 2, conditioned, "conditioned", "tab:green"),
        (width / 2, title_only, "title_only", "tab:gray"),
    ):
        counts, _ = np.histogram(values, bins=edges)
        mean = float(np.mean(values)) if len(values) else 0.0
        ax.bar(edges[:-1] + 0.05 + shift, counts, width=width, color=color, label=f"{LABELS[name]} (mean {mean:.0%})")
        ax.axvline(mean, color=color, linestyle="--", linewidth=1)
    ax.set_xticks(edges)
    ax.set_xticklabels([f"{e:.0%}" for e in edges])
    ax.set_xlabel("share of the prompt's keywords found in the generated posting")
    ax.set_ylabel("postings")
    ax.set_title("Keyword coverage: keywords in the prompt vs title only")
    ax.legend()
    _save(fig, path)
    plt.close(fig)


def _fmt(value: Any, kind: str = "num") -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "int":
        return f"{value:,.0f}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _metrics_table(conditions: dict[str, dict[str, Any]]) -> list[str]:
    from domainlm.evaluation import REP_N

    lines = [
        f"| | keyword coverage (mean) | median | words (mean) | distinct-1 | distinct-2 | repeated {REP_N}-grams "
        "| stopped at end-of-text |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in conditions.items():
        lines.append(
            f"| {LABELS.get(name, name)} | {_fmt(m['keyword_coverage'], 'pct')} "
            f"| {_fmt(m['keyword_coverage_median'], 'pct')} | {_fmt(m['words'], 'int')} | {_fmt(m['distinct_1'])} "
            f"| {_fmt(m['distinct_2'])} | {_fmt(m[f'repeated_{REP_N}gram_rate'], 'pct')} "
            f"| {_fmt(m['stopped_at_eos'], 'pct')} |"
        )
    return lines


def _keyword_use_lines(use: dict[str, Any] | None) -> list[str]:
    """The teacher-forced check of ``domainlm.evaluation.keyword_use``."""
    if not use:
        return []
    own, other, none = use["own"], use["other"], use["none"]
    if own < none < other:
        verdict = "the model reads the keywords: its own make the real body likelier, another posting's less likely"
    elif own < other:
        verdict = "its own keywords make the real body likelier than another posting's"
    else:
        verdict = "no sign that the model reads the keywords"
    return [
        "Teacher-forced, without sampling: the loss per token of the real validation bodies "
        f"({use['bodies']}) after three prompts; {verdict}.",
        "",
        "| prompt | body loss per token |",
        "|---|---|",
        f"| title + its own keywords | {own:.4f} |",
        f"| title + another posting's keywords | {other:.4f} |",
        f"| title only | {none:.4f} |",
        "",
    ]


def _perplexity_lines(ppl: dict[str, Any], trainer_state: dict[str, Any] | None) -> list[str]:
    lines = ["## Perplexity on validation", ""]
    if "after" in ppl:
        lines += [
            f"Computed here on the {_texts(ppl['texts'])} (`tokens + <|endoftext|>`, token-weighted):",
            "",
            "| model | perplexity |",
            "|---|---|",
        ]
        if "before" in ppl:
            lines.append(f"| before fine-tuning: {ppl['base_model']} | {_fmt(ppl['before'], 'num')} |")
        lines.append(f"| after fine-tuning | {_fmt(ppl['after'], 'num')} |")
        lines.append("")
    if "training_eval" in ppl:
        before = ppl.get("training_eval_before")
        lines.append(
            f"Training's own final evaluation (`eval_perplexity` in `all_results.json`, token-weighted over "
            f"the blocks it evaluated{BODY_ONLY if ppl.get('training_eval_loss_on') == 'body' else ''}): "
            f"{_fmt(ppl['training_eval'], 'num')}"
            + (f"; before training (`eval_before_perplexity`): {_fmt(before, 'num')}." if before is not None else ".")
        )
        lines.append("")
    evals = [e for e in (trainer_state or {}).get("log_history", []) if "eval_loss" in e]
    seen, rows = set(), []
    for e in evals:
        if e.get("step") not in seen:
            seen.add(e.get("step"))
            ppl_e = e.get("eval_perplexity")
            rows.append(f"| {_fmt(e.get('epoch'))} | {e.get('step')} | {e['eval_loss']:.4f} | {_fmt(ppl_e)} |")
    if rows:
        lines += ["Per evaluation during training:", "", "| epoch | step | eval loss | eval perplexity |"]
        lines += ["|---|---|---|---|", *rows, ""]
    if len(lines) == 2:
        lines += ["No validation records and no `all_results.json`: nothing to report.", ""]
    return lines


def _excerpt(text: str, n: int = SAMPLE_WORDS) -> str:
    parts = text.strip().split(" ")
    return " ".join(parts[:n]) + (" …" if len(parts) > n else "")


def _sample_lines(samples: Sequence[dict[str, Any]], prompts: int = 2) -> list[str]:
    lines = ["## Samples", ""]
    titles = list(dict.fromkeys(s["title"] for s in samples))[:prompts]
    for title in titles:
        for s in samples:
            if s["title"] != title or s["return_index"] != 0:
                continue
            found = [k for k, hit in s["keyword_hits"].items() if hit]
            missing = [k for k, hit in s["keyword_hits"].items() if not hit]
            lines += [
                f"**{title}**, {LABELS[s['condition']]} (seed {s['seed']}); keywords found: "
                f"{', '.join(found) or 'none'}; missing: {', '.join(missing) or 'none'}",
                "",
                "```text",
                _excerpt(s["generated"]),
                "```",
                "",
            ]
    return lines


def write_report(
    output_dir: str | Path,
    results: dict[str, Any],
    samples: Sequence[dict[str, Any]],
    trainer_state: dict[str, Any] | None,
) -> Path:
    """Write ``report.md``, ``keyword_coverage.png`` and (with a trainer state) ``loss.png``; return the report."""
    out, training, decoding = _start(output_dir, results, trainer_state)
    conds = results["conditions"]
    cov = {c: [v for v in conds[c]["keyword_coverage_per_sample"] if v is not None] for c in conds}
    plot_coverage(cov["conditioned"], cov["title_only"], out / COVERAGE_PNG)
    ratio = results.get("coverage_ratio")
    verdict = (
        f"**{ratio:.2f}×** the title-only coverage ({'meets' if ratio >= 2 else 'misses'} the goal of 2×)"
        if ratio is not None
        else "not comparable (title-only coverage is 0)"
    )
    lines = [
        f"{_HEADING}{results['model_dir']}`",
        "",
        f"{results['parameters']:,} parameters. {results['prompts']} validation prompts with keywords from "
        f"`{results['validation_file']}` ({results['skipped_without_keywords']} rows without keywords skipped), "
        "each generated twice: with its keywords in the prompt (`title<|SEP|>kw1, kw2<|SEP|>`) and with the "
        "title only (`title<|SEP|><|SEP|>`), with the same seed. Decoding: " + decoding + ".",
        "",
        "## Do the keywords steer the text?",
        "",
        f"With keywords in the prompt, a generated posting contains {_fmt(conds['conditioned']['keyword_coverage'], 'pct')} "
        f"of them on average; from the title alone, {_fmt(conds['title_only']['keyword_coverage'], 'pct')}: {verdict}.",
        "",
        *_metrics_table(conds),
        "",
        f"![Keyword coverage per posting, keywords in the prompt vs title only]({COVERAGE_PNG})",
        "",
        *_keyword_use_lines(results.get("keyword_use")),
        *_perplexity_lines(results.get("perplexity", {}), trainer_state),
        *training,
        *_sample_lines(samples),
        "## How the figures are computed",
        "",
        "- **Keyword coverage**: the share of the prompt's keywords found in the text. Text and keywords are "
        "casefolded; a keyword must appear as a whole phrase (`sql` is not found in `nosql`); any whitespace, "
        "line breaks included, matches the spaces between its words. Limits: no stemming or plurals (`nurse` is "
        "not found in `nurses`), no synonyms, punctuation must match (`hands on` is not `hands-on`). Title-only "
        "texts are scored against the keywords left out of their prompt. A generated text is scored whole: after a "
        "prompt's two `<|SEP|>`, generation never writes a third, so the text holds no keyword list of the model's "
        "own, only the posting.",
        *_text_metric_lines(),
    ]
    return _write(out / REPORT_FILE, lines)


def _text_metric_lines() -> list[str]:
    from domainlm.evaluation import REP_N

    return [
        "- **Words**: runs of letters and digits, casefolded.",
        "- **distinct-n**: distinct n-grams / all n-grams over all texts of a row of the table (higher = more varied).",
        f"- **Repeated {REP_N}-grams**: per text, 1 − distinct {REP_N}-grams / {REP_N}-grams, averaged "
        "(0 = never repeats itself).",
        "- **Stopped at end-of-text**: share of generations that ended with `<|endoftext|>` rather than at the "
        "token limit.",
        "",
        "Per-sample values: `eval_samples.jsonl`; all figures: `eval_results.json`.",
        "",
    ]


def _start(
    output_dir: str | Path, results: dict[str, Any], trainer_state: dict[str, Any] | None
) -> tuple[Path, list[str], str]:
    """The output folder (made), the report's training section (with ``loss.png`` when there is a
    trainer state) and the decoding settings in words."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    has_loss = plot_loss((trainer_state or {}).get("log_history", []), out / LOSS_PNG)
    training = [
        "## Training",
        "",
        f"![Training and evaluation loss over steps]({LOSS_PNG})"
        if has_loss
        else "No `trainer_state.json` in the model folder: no loss curve.",
        "",
    ]
    s = results["settings"]
    decoding = ", ".join(f"{k} {v}" for k, v in s.items() if v is not None and k not in ("batch_size",))
    return out, training, decoding


def _write(path: Path, lines: list[str]) -> Path:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def write_text_report(
    output_dir: str | Path,
    results: dict[str, Any],
    samples: Sequence[dict[str, Any]],
    trainer_state: dict[str, Any] | None,
) -> Path:
    """``report.md`` (and ``loss.png``) for a plain-text model: continuations of validation openings."""
    from domainlm.evaluation import REP_N

    out, training, decoding = _start(output_dir, results, trainer_state)
    skipped = results.get("skipped_too_short")
    table = [
        f"| | words (mean) | distinct-1 | distinct-2 | repeated {REP_N}-grams | stopped at end-of-text |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in results["conditions"].items():
        table.append(
            f"| {TEXT_LABELS.get(name, name)} | {_fmt(m['words'], 'int')} | {_fmt(m['distinct_1'])} "
            f"| {_fmt(m['distinct_2'])} | {_fmt(m[f'repeated_{REP_N}gram_rate'], 'pct')} "
            f"| {_fmt(m['stopped_at_eos'], 'pct')} |"
        )
    sample_lines = ["## Samples", ""]
    for sample in [x for x in samples if x["return_index"] == 0][:3]:
        sample_lines += [
            f"Opening `{_excerpt(sample['prompt']).replace('`', '')}` (seed {sample['seed']}"
            + ("; stopped at end-of-text)" if sample["stopped_at_eos"] else "; cut at the token limit)"),
            "",
            "```text",
            _excerpt(sample["generated"]),
            "```",
            "",
        ]
    lines = [
        f"{_HEADING}{results['model_dir']}`",
        "",
        f"{results['parameters']:,} parameters. Plain text: each of {_texts(results['prompts'])} from "
        f"`{results['validation_file']}` is continued from its first tokens (at most "
        f"{results['opening_tokens']}, and at most half the text)"
        + (f"; {skipped} text{'s' if skipped > 1 else ''} of one token skipped" if skipped else "")
        + ". Decoding: "
        + decoding
        + ".",
        "",
        "## Text quality",
        "",
        *table,
        "",
        *_perplexity_lines(results.get("perplexity", {}), trainer_state),
        *training,
        *sample_lines,
        "## How the figures are computed",
        "",
        *_text_metric_lines(),
    ]
    return _write(out / REPORT_FILE, lines)
