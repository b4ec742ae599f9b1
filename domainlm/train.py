"""Fine-tuning: set up, train, evaluate, save. ``run_clm.py`` is a thin door into ``main``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
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
    # huggingface_hub has a handler of its own and also passes its records to the root handler above:
    # each of its warnings (a hub retry) was printed twice
    hub_logger = logging.getLogger("huggingface_hub")
    for handler in list(hub_logger.handlers):
        hub_logger.removeHandler(handler)
    transformers.utils.logging.set_verbosity(level)
    from domainlm.trainer import install_filter

    install_filter("accelerate.accelerator", _TrainerOwnsAccumulation)


class _TrainerOwnsAccumulation(logging.Filter):
    """Drop accelerate's "Gradient accumulation steps mismatch: GradientAccumulationPlugin has 1" warning.

    The Trainer gives accelerate 1 on purpose (it accumulates itself) and DeepSpeed then takes the real
    value from its config, so every DeepSpeed run with ``--gradient_accumulation_steps 2`` (the GPT2-XL
    guide's command) warned of a mismatch that is none: the steps are right (``tests/test_multirank.py``
    checks the global batch). Any other mismatch still shows.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # accelerate's logger adapter puts "[RANK n] " in front
        return "Gradient accumulation steps mismatch: GradientAccumulationPlugin has 1," not in record.getMessage()


def resolve_resume(run_args: RunArguments, training_args: TrainingArguments) -> str | None:
    """Where training continues from: an explicit checkpoint, ``true`` (the last one), or, by default,
    the last checkpoint in a non-empty ``output_dir`` unless ``--overwrite_output_dir``.

    "Last" means the last complete one: a run killed while saving leaves a checkpoint without its
    trainer_state.json, which is skipped. A checkpoint written under another DeepSpeed ZeRO stage or
    number of processes is refused in one line (``domainlm.guards.check_resume``), and so is a resume that
    the processes see differently (machines without a shared ``output_dir``: ``agree_across_ranks``). Without
    ``--overwrite_output_dir``, an ``output_dir`` that holds no checkpoint to continue from but other files
    (a finished model, say) is refused, as 4.x run_clm did (``domainlm.guards.check_nothing_to_lose``).
    """
    from domainlm.guards import (
        agree_across_ranks,
        check_nothing_to_lose,
        check_resume,
        checkpoint_dirs,
        current_layout,
        is_complete_checkpoint,
        last_complete_checkpoint,
    )

    output_dir = training_args.output_dir
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "false"):
        resume = resume.lower() == "true"
    if resume is True:
        last = last_complete_checkpoint(output_dir)
        agree_across_ranks(_seen(last), f"the last checkpoint in {output_dir}")
        if last is None:
            raise UserError(f"--resume_from_checkpoint true: no complete checkpoint-* folder in {output_dir}")
        chosen = str(last)
    elif resume:
        found = os.path.isdir(resume)
        seen = ("complete" if is_complete_checkpoint(resume) else "incomplete") if found else "no such folder"
        agree_across_ranks(seen, f"--resume_from_checkpoint {resume}")
        if not found:
            raise UserError(f"--resume_from_checkpoint {resume}: no such folder")
        if not run_args.overwrite_output_dir and last_complete_checkpoint(output_dir, warn=False) is None:
            check_nothing_to_lose(output_dir)
        chosen = str(resume)
    elif run_args.overwrite_output_dir:
        old = checkpoint_dirs(output_dir)
        if old:
            logger.warning(
                "--overwrite_output_dir: starting afresh; %d checkpoint folder(s) of an earlier run stay in %s (up "
                "to %s) and a later run without --overwrite_output_dir would continue from the highest: remove them",
                len(old), output_dir, old[-1].name,
            )  # fmt: skip
        return None
    else:
        last = last_complete_checkpoint(output_dir)
        agree_across_ranks(_seen(last), f"the checkpoint in {output_dir} to continue from")
        if last is None:
            check_nothing_to_lose(output_dir)
            return None
        logger.info("continuing from %s (pass --overwrite_output_dir to start afresh)", last)
        chosen = str(last)
    check_resume(chosen, current_layout(training_args))
    return chosen


def _seen(last: Path | None) -> str:
    return last.name if last is not None else "no complete checkpoint"


class OutputFolder:
    """``output_dir`` during a run: on failure, removed again if this run created it and left nothing of use.

    "Nothing of use": no optimizer step was taken, and the folder holds only what a run writes before
    its first checkpoint (``domainlm.guards.files_at_stake`` is empty), e.g. an empty TensorBoard log.
    Only the main process removes it. Set ``trainer`` once there is one.
    """

    def __init__(self, training_args: TrainingArguments) -> None:
        self.path = Path(training_args.output_dir)
        self.new = not self.path.exists()
        self.main_process = training_args.process_index == 0
        self.trainer: Any = None
        self.saved_model = False  # this run's trained model is in the folder

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None or not (self.new and self.main_process and self.path.is_dir()):
            return
        if self.trainer is not None and self.trainer.state.global_step > 0:
            return
        from domainlm.guards import files_at_stake

        if not files_at_stake(self.path):
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)


RERUN_HINT = "DOMAINLM_RERUN"  # set by a script that runs run_clm.py: what to do to continue, in words


def interrupted_message(run_args: RunArguments, training_args: TrainingArguments, since: float | None = None) -> str:
    """The line Ctrl-C prints: how to continue from the last checkpoint, or that there is none. ``since``: when
    this run started; a new run (--overwrite_output_dir) continues from no checkpoint written before it (one that
    a finished run kept, launch.sh's KEEP_CHECKPOINTS=1)."""
    out = training_args.output_dir
    if not training_args.do_train:
        return "interrupted"
    from domainlm.guards import TRAINER_STATE, last_complete_checkpoint

    last = last_complete_checkpoint(out, warn=False)
    if last is None:
        return f"interrupted; no checkpoint in {out} yet to continue from: the same command starts afresh"
    new_run = run_args.overwrite_output_dir and not training_args.resume_from_checkpoint
    if new_run and since is not None and (last / TRAINER_STATE).stat().st_mtime < since:
        return (
            f"interrupted; this run saved no checkpoint in {out} yet ({last.name} is an earlier run's): the same "
            "command starts afresh"
        )
    rerun = os.environ.get(RERUN_HINT)
    if rerun:  # a script that runs this one knows how it continues (launch.sh: drops --overwrite_output_dir)
        return f"interrupted; {rerun} to continue from the last checkpoint in {out} ({last.name})"
    if run_args.overwrite_output_dir:
        return f"interrupted; to continue from {last}, run the same command without --overwrite_output_dir"
    resume = training_args.resume_from_checkpoint
    if resume and str(resume).lower() != "true":
        return f"interrupted; to continue from {last}, run the same command with --resume_from_checkpoint true"
    return f"interrupted; run the same command again to continue from the last checkpoint in {out} ({last.name})"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from domainlm.args import parse_args
    from domainlm.errors import Interrupted

    model_args, data_args, run_args, training_args = parse_args(argv)  # ranks aligned: domainlm/distributed.py
    from domainlm import distributed

    setup_logging(training_args)
    for note in ("single_process_note", "world_size_note"):  # set while parsing, before logging was set up
        if getattr(distributed, note):
            logger.info("%s", getattr(distributed, note))
            setattr(distributed, note, None)
    from domainlm.data import no_progress_bars
    from domainlm.guards import ctrl_c

    bars = no_progress_bars() if training_args.disable_tqdm else contextlib.nullcontext()
    started = time.time()
    folder = None
    try:
        with ctrl_c.watching(), OutputFolder(training_args) as folder, bars:
            return run(argv, model_args, data_args, run_args, training_args, folder)
    except KeyboardInterrupt as err:
        if isinstance(err, Interrupted):
            raise
        raise Interrupted(interrupted_message(run_args, training_args, started)) from None
    except Exception as err:
        from domainlm.oom import is_out_of_memory, out_of_memory_message

        if not is_out_of_memory(err):
            raise
        out = training_args.output_dir
        if folder is not None and folder.saved_model:  # the final evaluation ran out
            from domainlm.guards import zero_stage

            alone = " and without --deepspeed (or with ds_config_zero3.json)"  # DeepSpeed evaluates alone at ZeRO-3
            continuation = (
                f"the trained model is saved in {out}: evaluate it alone with --model_name_or_path {out} --do_eval, "
                f"without --do_train{alone if training_args.deepspeed and zero_stage(training_args) < 3 else ''}"
            )
        elif training_args.do_train:
            continuation = interrupted_message(run_args, training_args, started).removeprefix("interrupted; ")
        else:
            continuation = None
        trainer = folder.trainer if folder is not None else None
        raise UserError(out_of_memory_message(err, trainer, training_args, continuation)) from None


def run(
    argv: list[str] | None,
    model_args: Any,
    data_args: Any,
    run_args: RunArguments,
    training_args: TrainingArguments,
    folder: OutputFolder,
) -> dict[str, Any]:
    """Set up, train, evaluate, save (``main`` parses the arguments and handles the ways out)."""
    from transformers import set_seed

    from domainlm import distributed
    from domainlm.data import build_sequences, load_splits, resolve_sequence_mode, split_sources
    from domainlm.metrics import argmax_logits, compute_metrics
    from domainlm.modeling import check_flash_window, configure_generation, context_length, load_model, load_tokenizer
    from domainlm.saving import save_trained_model
    from domainlm.tables import write_json
    from domainlm.trainer import DomainTrainer

    set_seed(training_args.seed)
    distributed.unlink_shm_buffer_once_mapped()
    resume = resolve_resume(run_args, training_args) if training_args.do_train else None  # before any work
    from domainlm.publish import prepare_push, push_folder

    push = prepare_push(training_args, model_args.token)  # the hub repository made now, not after training
    if training_args.deepspeed and training_args.do_eval and not training_args.do_train:
        from domainlm.guards import zero_stage

        stage = zero_stage(training_args)
        if stage != 3:
            raise UserError(
                f"--do_eval without --do_train under DeepSpeed ZeRO stage {stage}: DeepSpeed "
                "evaluates alone only under ZeRO-3; pass --deepspeed ds_config_zero3.json, or leave out --deepspeed"
            )

    tokenizer = load_tokenizer(model_args)
    with training_args.main_process_first(desc="loading data"):
        raw = load_splits(data_args, training_args, model_args.token, model_args.cache_dir)
    first = raw["train"] if "train" in raw else raw["validation"]
    head = first.select(range(min(200, len(first))))["text"]
    mode = resolve_sequence_mode(data_args.sequence_mode, head)
    job_records = resolve_sequence_mode("auto", head) == "records"  # rows title<|SEP|>keywords<|SEP|>text
    if mode == "concat" and data_args.overlong != "drop":
        chose = (
            " (--sequence_mode auto chose concat: the rows are plain text)" if data_args.sequence_mode == "auto" else ""
        )
        raise UserError(
            f"--overlong {data_args.overlong} does nothing in concat mode{chose}, which joins the rows and cuts them "
            "into --block_size blocks; pass --sequence_mode records (or packed) to keep rows whole"
        )
    model = load_model(model_args, tokenizer, training_args)
    context = context_length(model.config)
    block_size = data_args.block_size or min(context, 1024)
    if block_size > context:  # as 4.x run_clm: the longest the model takes, with a warning
        logger.warning(
            "--block_size %d is over the model's context of %d tokens: using %d", block_size, context, context
        )
        block_size = context
    check_flash_window(model.config, block_size)
    logger.info("sequence mode: %s, block size %d", mode, block_size)
    if data_args.sequence_mode == "auto" and mode == "concat":
        logger.info(
            "--sequence_mode auto chose concat because the rows are plain text, not title<|SEP|>keywords<|SEP|>text "
            "records: rows are joined with <|endoftext|> and cut into blocks of %d tokens, so a block may start or "
            "end inside a row; --sequence_mode records (or packed) keeps each row (a joke, a poem) one whole sequence",
            block_size,
        )
    collate: dict[str, bool] = {}
    if mode == "packed":
        model.config.use_cache = False  # with a cache, packed records would attend to each other
        from domainlm.packed_attention import needs_flash_varlen, runs_per_record, use_packed_attention

        flash_varlen = needs_flash_varlen(model)  # GPT-2 on flash_attention_2: varlen arguments in every batch
        use_packed_attention(model)  # GPT-2 on sdpa: each record pays its own causal attention, not the square
        from domainlm.packed_attention import NoMaskWarningFilter
        from domainlm.trainer import install_filter

        install_filter("transformers.modeling_utils", NoMaskWarningFilter)  # rows of records, no mask by design
        # attention per record: a batch's rows can run end to end as one, without computing their pad tails
        flatten = runs_per_record(model.config.model_type, model.config._attn_implementation)
        collate = {"flash_varlen": flash_varlen, "flatten": flatten}

    splits = {}
    sources = split_sources(data_args, raw)  # files, or splits of --dataset_name
    with training_args.main_process_first(desc="tokenising"):
        for name, ds in raw.items():
            splits[name] = build_sequences(ds, tokenizer, mode, block_size, data_args, source=sources[name])
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples}
    for name, limit in limits.items():
        if name in splits and limit is not None:
            splits[name] = splits[name].select(range(min(limit, len(splits[name]))))
    data_stats: dict[str, dict[str, int]] = {}  # for the model card
    for name, ds in splits.items():
        tokens = sum(len(x) for x in ds["input_ids"])
        logger.info("%s: %d sequences, %d tokens", name, len(ds), tokens)
        data_stats[name] = {"sequences": len(ds), "tokens": tokens}

    configure_generation(model, tokenizer)
    collator, callbacks = make_collator(tokenizer, block_size, data_args, training_args, **collate)
    schedule = apply_freezing(model, model_args, training_args)
    callbacks += long_run_callbacks(
        run_args, training_args, tokenizer, raw, resume is not None
    )  # guards, samples, eval before
    default_report_to(argv, training_args)
    trainer = DomainTrainer(
        model=model,
        args=training_args,
        train_dataset=splits.get("train") if training_args.do_train else None,
        eval_dataset=splits.get("validation") if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=collator,
        callbacks=callbacks,
        layerwise_lr_decay=model_args.layerwise_lr_decay,
        unfreeze_schedule=schedule,
        compute_metrics=compute_metrics if training_args.do_eval else None,
        preprocess_logits_for_metrics=argmax_logits if training_args.do_eval else None,
    )
    folder.trainer = trainer

    # the seed, or the model started from: evaluate_model.py --base_model init takes the weights training started from
    results: dict[str, Any] = {"sequence_mode": mode, "block_size": block_size, "seed": training_args.seed}
    if data_args.loss_on != "all":  # the eval_* figures cover the posting bodies alone
        results["loss_on"] = data_args.loss_on
    if model_args.model_name_or_path:  # a folder as an absolute path: evaluation may run from elsewhere
        start = Path(model_args.model_name_or_path)
        results["model_name_or_path"] = str(start.resolve()) if start.is_dir() else model_args.model_name_or_path
    out = Path(training_args.output_dir)

    def write_results() -> None:
        """all_results.json, and after training trainer_state.json and the model card: by the main process."""
        if not trainer.is_world_process_zero():
            return
        write_json(out / "all_results.json", results)
        if training_args.do_train:
            write_json(out / "trainer_state.json", _state_dict(trainer))
            from domainlm.model_card import card_facts, write_model_card

            facts = card_facts(
                out,
                model,
                model_args,
                data_args,
                training_args,
                results,
                data_stats,
                trainer.state.global_step,
                job_records=job_records,
                name=push.repo_id if push else None,
                sources=sources,
            )
            write_model_card(out, facts)

    if training_args.do_train:
        if resume is None:
            remove_earlier_run_files(training_args)
            trainer.accelerator.wait_for_everyone()  # removed on every machine before any process writes its own
        result = trainer.train(resume_from_checkpoint=resume)
        results.update({f"train_{k}" if not k.startswith("train_") else k: v for k, v in result.metrics.items()})
        results["train_samples"] = len(splits["train"])
        results.update(eval_before_results(callbacks))
        use_cache, model.config.use_cache = model.config.use_cache, True  # saved folder generates with a cache
        save_trained_model(trainer, out)
        folder.saved_model = True
        model.config.use_cache = use_cache
        if trainer.is_world_process_zero():  # the process that saved it
            remove_earlier_evaluation(out)
        if training_args.do_eval:  # the new model's figures so far: a final evaluation that fails (out of
            write_results()  # memory, Ctrl-C) leaves none of the replaced model's beside the new weights
    if training_args.do_eval:
        metrics = trainer.evaluate()
        from domainlm.metrics import perplexity

        metrics["eval_perplexity"] = perplexity(metrics["eval_loss"])
        metrics["eval_samples"] = len(splits["validation"])
        results.update(metrics)
    if not training_args.do_train:
        results = evaluation_only_results(out, results)
    write_results()
    if trainer.is_world_process_zero():
        logger.info("results: %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()})
    if push is not None:
        push_folder(push, out)  # the whole folder, model card and results included, in one commit
    return results


TRAINING_KEYS = ("seed", "model_name_or_path")  # how the model was trained: evaluate_model.py --base_model init


def evaluation_only_results(output_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """``--do_eval`` without ``--do_train``: the evaluation's figures, added to the ``all_results.json``
    already in ``output_dir`` (a trained folder evaluated again), whose training figures, seed and starting
    model stay. This run trained nothing, so it records no seed or starting model of its own: they would
    tell ``evaluate_model.py --base_model init`` to compare the folder with itself or another initialisation."""
    from domainlm.evaluation import read_json_or_none

    fresh = {k: v for k, v in results.items() if k not in TRAINING_KEYS and k != "epoch"}
    earlier = read_json_or_none(output_dir / "all_results.json")
    if not isinstance(earlier, dict):
        return fresh
    if earlier.get("loss_on", "all") != fresh.get("loss_on", "all"):  # its eval_* figures measured other tokens
        earlier = {k: v for k, v in earlier.items() if not k.startswith("eval_")}
    merged = {**earlier, **{k: v for k, v in fresh.items() if k.startswith("eval_") or k not in earlier}}
    merged.pop("loss_on", None)  # it says what the eval_* figures cover: this evaluation's
    return {**merged, **({"loss_on": fresh["loss_on"]} if "loss_on" in fresh else {})}


def remove_earlier_run_files(training_args: TrainingArguments) -> None:
    """A new run, not a resumed one: the files that an earlier run in ``output_dir`` rewrote while it trained
    (``domainlm.guards.RUN_FILES``: samples.jsonl, optimizer_groups.json) go before this run trains. This run
    may write neither (no --sample_every_steps, no layer groups), and would otherwise leave the earlier run's
    next to its model, or add its samples to them. Removed by the processes that write them."""
    from domainlm.guards import RUN_FILES

    if not training_args.should_save:
        return
    for name in RUN_FILES:
        path = Path(training_args.output_dir) / name
        if path.is_file():
            path.unlink()
            logger.info("removed %s: an earlier run's, and this run starts afresh", path)


def remove_earlier_evaluation(output_dir: Path) -> None:
    """Once this run's model is saved: the evaluation of the model it replaced (evaluate_model.py's report.md,
    its plots, eval_results.json, eval_samples.jsonl: ``domainlm.evaluation.earlier_evaluation``) would describe
    another model. Until then it stays, next to the weights it describes; the report goes last."""
    from domainlm.evaluation import earlier_evaluation

    names = earlier_evaluation(output_dir)
    for name in names:
        (output_dir / name).unlink(missing_ok=True)
    if names:
        logger.info("removed the evaluation of the model this run replaced from %s: %s", output_dir, ", ".join(names))


def apply_freezing(model: Any, model_args: Any, training_args: TrainingArguments) -> Any:
    """Freeze blocks for --unfreeze_last_n; return the parsed --unfreeze_schedule (or None).

    Per-layer learning rates need the Trainer to build the optimizer, so an ``optimizer`` block in
    the DeepSpeed config is set aside (its values are the Trainer's own "auto" ones).
    """
    from domainlm.freezing import UnfreezeSchedule, freeze_all_but_last, n_layers_of

    if model_args.unfreeze_last_n is not None:
        freeze_all_but_last(model, model_args.unfreeze_last_n)
    schedule = None
    if model_args.unfreeze_schedule:
        schedule = UnfreezeSchedule.parse(model_args.unfreeze_schedule, model_args.unfreeze_unit)
        schedule.check_blocks(n_layers_of(model))
    ds_config = getattr(training_args, "hf_deepspeed_config", None)
    if (schedule or model_args.layerwise_lr_decay) and ds_config is not None and "optimizer" in ds_config.config:
        logger.info("per-layer learning rates: the Trainer builds the optimizer, not the DeepSpeed config")
        del ds_config.config["optimizer"]
    return schedule


def make_collator(
    tokenizer: Any, block_size: int, data_args: Any, training_args: TrainingArguments, **packed_rows: bool
) -> tuple[Any, list[Any]]:
    """The padding collator (``packed_rows``: its ``flash_varlen`` and ``flatten`` switches), with a keyword
    shuffler and its epoch callback when asked for."""
    from domainlm.data import CausalLMCollator, RecordEncoder

    if not data_args.shuffle_keywords:
        return CausalLMCollator(pad_token_id=tokenizer.pad_token_id, **packed_rows), []
    from domainlm.keyword_shuffle import KeywordShuffleCallback, KeywordShuffler

    shuffler = KeywordShuffler(RecordEncoder(tokenizer, data_args.loss_on == "body"), block_size, training_args.seed)
    training_args.remove_unused_columns = False  # the collator needs the record texts
    collator = CausalLMCollator(pad_token_id=tokenizer.pad_token_id, shuffler=shuffler, **packed_rows)
    return collator, [KeywordShuffleCallback(shuffler)]


def _state_dict(trainer: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(trainer.state)


# --- long runs: guards, samples, evaluation before training, TensorBoard (domainlm/guards.py, callbacks.py) ---


def long_run_callbacks(
    run_args: RunArguments, training_args: TrainingArguments, tokenizer: Any, raw: Any, resuming: bool = False
) -> list:
    """The callbacks that guard a long run and show what it does, as ``run_args`` asks. ``resuming``: the
    evaluation before training is the interrupted run's (the checkpoint's weights are not "before")."""
    from domainlm.callbacks import EvalBeforeTraining, SampleCallback, sample_prompts
    from domainlm.guards import CheckpointInfo, CPUAdamResume, DiskGuard, DivergenceGuard, ctrl_c

    callbacks: list[Any] = [CheckpointInfo(), CPUAdamResume(), DivergenceGuard(run_args.max_skipped_steps), ctrl_c]
    if run_args.check_disk_space:
        callbacks.insert(0, DiskGuard())
    if run_args.eval_before_training:  # with --do_eval: parse_args checks
        training_args.eval_on_start = True
    if training_args.eval_on_start:
        callbacks.append(EvalBeforeTraining())
        if resuming:
            training_args.eval_on_start = False
            logger.info("the evaluation before training is the one of the run this continues (its step 0)")
    if run_args.sample_every_steps and run_args.num_samples:
        split = raw["validation"] if "validation" in raw else raw["train"]
        texts = split.select(range(min(len(split), 20 * run_args.num_samples)))["text"]
        prompts = sample_prompts(texts, run_args.num_samples)
        callbacks.append(
            SampleCallback(
                prompts, tokenizer, run_args.sample_every_steps, run_args.sample_max_new_tokens, training_args.seed
            )
        )
    return callbacks


def eval_before_results(callbacks: list[Any]) -> dict[str, float]:
    from domainlm.callbacks import EvalBeforeTraining

    before = next((c for c in callbacks if isinstance(c, EvalBeforeTraining)), None)
    return before.results() if before is not None else {}


def default_report_to(argv: list[str] | None, training_args: TrainingArguments) -> None:
    """TensorBoard logs (in ``output_dir/runs``, or ``--logging_dir``) unless ``--report_to`` says otherwise:
    transformers 5 reports nowhere by default, 4.x reported to every installed integration."""
    import json

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 1 and args[0].endswith(".json"):
        try:
            given = "report_to" in json.loads(Path(args[0]).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            given = True
    else:
        given = any(a.split("=", 1)[0] in ("--report_to", "--report-to") for a in args)
    if not given:
        training_args.report_to = ["tensorboard"]
