"""Fine-tuning: set up, train, evaluate, save. ``run_clm.py`` is a thin door into ``main``."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domainlm.errors import UserError

if TYPE_CHECKING:
    from transformers import TrainingArguments

    from domainlm.args import RunArguments

logger = logging.getLogger("domainlm")


def setup_logging(training_args: TrainingArguments) -> None:
    import datasets
    import transformers

    level = training_args.get_process_log_level()
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
        level=level,
    )
    logging.getLogger("domainlm").setLevel(logging.INFO if training_args.should_log else level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)


def resolve_resume(run_args: RunArguments, training_args: TrainingArguments) -> str | bool | None:
    """Where training continues from: an explicit checkpoint, ``true`` (the last one), or, by default,
    the last checkpoint in a non-empty ``output_dir`` unless ``--overwrite_output_dir``."""
    from transformers.trainer_utils import get_last_checkpoint

    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "false"):
        resume = resume.lower() == "true"
    if resume is True:
        last = get_last_checkpoint(training_args.output_dir) if os.path.isdir(training_args.output_dir) else None
        if last is None:
            raise UserError(f"--resume_from_checkpoint true: no checkpoint-* folder in {training_args.output_dir}")
        return last
    if resume:
        if not os.path.isdir(resume):
            raise UserError(f"--resume_from_checkpoint {resume}: no such folder")
        return resume
    if run_args.overwrite_output_dir or not os.path.isdir(training_args.output_dir):
        return None
    last = get_last_checkpoint(training_args.output_dir)
    if last is not None:
        logger.info("continuing from %s (pass --overwrite_output_dir to start afresh)", last)
    return last


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from transformers import set_seed

    from domainlm.args import parse_args
    from domainlm.data import CausalLMCollator, build_sequences, load_splits, resolve_sequence_mode
    from domainlm.metrics import argmax_logits, compute_metrics
    from domainlm.modeling import configure_generation, context_length, load_model, load_tokenizer
    from domainlm.saving import save_trained_model
    from domainlm.tables import write_json
    from domainlm.trainer import DomainTrainer

    model_args, data_args, run_args, training_args = parse_args(argv)
    setup_logging(training_args)
    set_seed(training_args.seed)

    tokenizer = load_tokenizer(model_args)
    with training_args.main_process_first(desc="loading data"):
        raw = load_splits(data_args, training_args)
    first = raw["train"] if "train" in raw else raw["validation"]
    mode = resolve_sequence_mode(data_args.sequence_mode, first["text"])
    model = load_model(model_args, tokenizer)
    context = context_length(model.config)
    block_size = data_args.block_size or min(context, 1024)
    if block_size > context:
        raise UserError(f"--block_size {block_size} is over the model's context of {context} tokens")
    logger.info("sequence mode: %s, block size %d", mode, block_size)

    splits = {}
    with training_args.main_process_first(desc="tokenising"):
        for name, ds in raw.items():
            splits[name] = build_sequences(ds, tokenizer, mode, block_size, data_args)
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples}
    for name, limit in limits.items():
        if name in splits and limit is not None:
            splits[name] = splits[name].select(range(min(limit, len(splits[name]))))
    for name, ds in splits.items():
        tokens = sum(len(x) for x in ds["input_ids"])
        logger.info("%s: %d sequences, %d tokens", name, len(ds), tokens)

    configure_generation(model, tokenizer)
    trainer = DomainTrainer(
        model=model,
        args=training_args,
        train_dataset=splits.get("train") if training_args.do_train else None,
        eval_dataset=splits.get("validation") if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=CausalLMCollator(pad_token_id=tokenizer.pad_token_id),
        compute_metrics=compute_metrics if training_args.do_eval else None,
        preprocess_logits_for_metrics=argmax_logits if training_args.do_eval else None,
    )

    results: dict[str, Any] = {"sequence_mode": mode, "block_size": block_size}
    out = Path(training_args.output_dir)
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=resolve_resume(run_args, training_args))
        results.update({f"train_{k}" if not k.startswith("train_") else k: v for k, v in result.metrics.items()})
        results["train_samples"] = len(splits["train"])
        save_trained_model(trainer, out)
    if training_args.do_eval:
        metrics = trainer.evaluate()
        from domainlm.metrics import perplexity

        metrics["eval_perplexity"] = perplexity(metrics["eval_loss"])
        metrics["eval_samples"] = len(splits["validation"])
        results.update(metrics)
    if trainer.is_world_process_zero():
        write_json(out / "all_results.json", results)
        if training_args.do_train:
            write_json(out / "trainer_state.json", _state_dict(trainer))
        logger.info("results: %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()})
    return results


def _state_dict(trainer: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(trainer.state)
