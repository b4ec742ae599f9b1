"""The model card: a ``README.md`` in the output folder saying what was trained, on what, how, and how well.

``render_model_card`` builds the text from plain values (tested on exact strings); ``card_facts`` gathers
them from a finished run.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domainlm.template import format_prompt

if TYPE_CHECKING:
    from transformers import TrainingArguments

    from domainlm.args import DataArguments, ModelArguments

CARD_FILE = "README.md"
RECORD_MODES = ("records", "packed")  # modes whose rows are title<|SEP|>keywords<|SEP|>text


@dataclasses.dataclass
class CardFacts:
    name: str
    architecture: str  # e.g. "GPT-2, 2 layers, 32 wide, context 256 tokens, 49,696 parameters"
    base_model: str | None  # a hub name or folder; None when trained from scratch
    from_scratch: str | None = None  # the config it was built from
    sequence_mode: str | None = None
    block_size: int | None = None
    # the training rows are title<|SEP|>keywords<|SEP|>text; None: taken to be so in a record mode. A
    # corpus of jokes or poems trained with --sequence_mode records has plain rows all the same
    job_records: bool | None = None
    data: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # split -> file, sequences, tokens
    hyperparameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    results: dict[str, Any] = dataclasses.field(default_factory=dict)
    dataset: str | None = None  # a hub dataset trained on (--dataset_name), named in the card's metadata


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return f"{value:,.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def _metric_rows(results: dict[str, Any]) -> list[str]:
    rows = []
    for label, key in (("loss", "loss"), ("perplexity", "perplexity"), ("next-token accuracy", "accuracy")):
        before, after = results.get(f"eval_before_{key}"), results.get(f"eval_{key}")
        if before is None and after is None:
            continue
        rows.append(
            f"| {label} | {_fmt(before) if before is not None else '-'} | {_fmt(after) if after is not None else '-'} |"
        )
    return rows


def render_model_card(facts: CardFacts) -> str:
    lines = ["---", "library_name: transformers", "pipeline_tag: text-generation"]
    if facts.base_model and not os.path.isdir(facts.base_model):
        lines.append(f"base_model: {facts.base_model}")
    if facts.dataset and not os.path.isdir(facts.dataset):
        lines += ["datasets:", f"- {facts.dataset}"]
    lines += ["tags:", "- domainlm", "- text-generation", "---", "", f"# {facts.name}", ""]
    origin = (
        f"fine-tuned from `{facts.base_model}`" if facts.base_model else f"trained from scratch ({facts.from_scratch})"
    )
    lines += [f"{facts.architecture}; {origin} with domainlm's `run_clm.py`.", ""]

    job_records = facts.sequence_mode in RECORD_MODES if facts.job_records is None else facts.job_records
    prompt = format_prompt("Data Scientist", ["python", "sql"]) if job_records else "Once upon a time"
    lines += [
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'generator = pipeline("text-generation", model="{facts.name}")',
        f'print(generator({prompt!r})[0]["generated_text"])',
        "```",
        "",
    ]
    if job_records:
        lines += [
            "Prompts are `title<|SEP|>keyword, keyword<|SEP|>`, the layout of the training rows; the model writes the "
            "posting and stops at `<|endoftext|>`.",
            "",
        ]

    lines += ["## Data", ""]
    if facts.data:
        lines += ["| split | data | sequences | tokens |", "|---|---|---|---|"]
        for split, d in facts.data.items():
            lines.append(
                f"| {split} | {d.get('file') or '-'} | {_fmt(d.get('sequences', '-'))} | {_fmt(d.get('tokens', '-'))} |"
            )
        lines.append("")
    if facts.sequence_mode:
        lines += [f"Sequence mode `{facts.sequence_mode}`, block size {facts.block_size} tokens.", ""]

    if facts.hyperparameters:
        lines += ["## Training", "", "| hyperparameter | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in facts.hyperparameters.items()]
        lines.append("")

    metric_rows = _metric_rows(facts.results)
    other = {k: facts.results[k] for k in ("train_loss", "train_runtime") if k in facts.results}
    if metric_rows or other:
        lines += ["## Results", ""]
        if metric_rows:
            split = "Evaluation on the validation split" + (
                " (its postings' bodies and end-of-text alone, as trained with `--loss_on body`; "
                "title and keywords carry no loss)"
                if facts.results.get("loss_on") == "body"
                else ""
            )
            lines += [f"{split}:", "", "| metric | before training | after training |",
                      "|---|---|---|", *metric_rows, ""]  # fmt: skip
        for k, v in other.items():
            lines.append(f"- {k.replace('_', ' ')}: {_fmt(v)}")
        if other:
            lines.append("")
    return "\n".join(lines)


def _architecture(model: Any) -> str:
    from domainlm.guards import parameter_counts
    from domainlm.modeling import context_length

    config = model.config
    names = {"gpt2": "GPT-2", "gpt_neo": "GPT-Neo"}
    layers = getattr(config, "n_layer", None) or getattr(config, "num_layers", None)
    width = getattr(config, "n_embd", None) or getattr(config, "hidden_size", None)
    n_params, _ = parameter_counts(model)
    return (
        f"{names.get(config.model_type, config.model_type)}, {layers} layers, {width} wide, "
        f"context {context_length(config)} tokens, {n_params:,} parameters"
    )


def _warmup(args: TrainingArguments, steps: int | None) -> str:
    """``--warmup_steps`` as words: below 1 it is a fraction of the optimizer steps (transformers 5)."""
    warmup = args.warmup_steps
    if 0 < warmup < 1:
        n = args.get_warmup_steps(steps) if steps else None
        counted = "" if n is None else f" ({n} step{'' if n == 1 else 's'})"
        return f"warm-up over the first {warmup * 100:g}% of the steps{counted}"
    n = int(warmup)
    return f"{n} warm-up step{'' if n == 1 else 's'}"


def _precision(args: TrainingArguments, model: Any) -> str:
    """The 16-bit compute of --bf16/--fp16; weights trained in 16 bits (--torch_dtype, without DeepSpeed,
    which keeps float32 copies of its 16-bit weights) say so."""
    weights = str(getattr(model, "dtype", "")).replace("torch.", "")
    if weights in ("bfloat16", "float16") and not args.deepspeed:
        return f"pure {weights} (the weights themselves, no float32 copies)"
    return "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"


def card_facts(
    output_dir: str | os.PathLike,
    model: Any,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    results: dict[str, Any],
    data_stats: dict[str, dict[str, Any]],
    steps: int | None = None,
    job_records: bool | None = None,
    name: str | None = None,
    *,
    sources: dict[str, str | None],
) -> CardFacts:
    """What the model card says. ``name`` is what ``pipeline`` loads it by (the hub repository of
    ``--push_to_hub``); the folder's name by default. ``sources``: where each split's rows come from, a file
    or a split of ``--dataset_name`` (``domainlm.data.split_sources``)."""
    from domainlm.guards import zero_stage

    data = {split: {"file": sources.get(split), **stats} for split, stats in data_stats.items()}
    args = training_args
    world = args.world_size
    hyper: dict[str, Any] = {
        "learning rate": args.learning_rate,
        "schedule": f"{args.lr_scheduler_type.value if hasattr(args.lr_scheduler_type, 'value') else args.lr_scheduler_type}, "
        f"{_warmup(args, steps)}",
        "epochs": args.num_train_epochs if args.max_steps <= 0 else f"max {args.max_steps} steps",
        "batch per device": args.per_device_train_batch_size,
        "gradient accumulation": args.gradient_accumulation_steps,
        "processes": world,
        "effective batch": args.per_device_train_batch_size * args.gradient_accumulation_steps * world,
        "weight decay": args.weight_decay,
        "max grad norm": args.max_grad_norm,
        "precision": _precision(args, model),
        "DeepSpeed": f"ZeRO stage {zero_stage(args)}" if args.deepspeed else "no",
        "seed": args.seed,
    }
    if model_args.unfreeze_last_n is not None:
        n = model_args.unfreeze_last_n
        hyper["trained"] = f"the last {'block' if n == 1 else f'{n} blocks'}, the final norm and the head"
    if model_args.unfreeze_schedule:
        hyper["gradual unfreezing"] = f"{model_args.unfreeze_schedule} ({model_args.unfreeze_unit})"
    if model_args.layerwise_lr_decay is not None:
        hyper["layer-wise rate decay"] = f"x{model_args.layerwise_lr_decay} per layer group below the head"
    if data_args.loss_on != "all":
        hyper["loss on"] = "the posting body and end-of-text (title and keywords masked)"
    if data_args.shuffle_keywords:
        hyper["keyword order"] = "reshuffled every epoch"
    if data_args.overlong != "drop":
        hyper["records over the block"] = data_args.overlong
    if steps is not None:
        hyper["optimizer steps"] = steps
    from_scratch = None
    if not model_args.model_name_or_path:
        from_scratch = model_args.config_name or model_args.model_type or "a config"
        if model_args.config_overrides:
            from_scratch += f" with {model_args.config_overrides}"
    return CardFacts(
        name=name or Path(output_dir).name,
        architecture=_architecture(model),
        base_model=model_args.model_name_or_path,
        from_scratch=from_scratch,
        sequence_mode=results.get("sequence_mode"),
        block_size=results.get("block_size"),
        job_records=job_records,
        data=data,
        hyperparameters=hyper,
        results=results,
        dataset=data_args.dataset_name,
    )


def write_model_card(output_dir: str | os.PathLike, facts: CardFacts) -> Path:
    from domainlm.tables import atomic_write

    path = Path(output_dir) / CARD_FILE
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(render_model_card(facts))
    return path
