"""The Trainer subclass: the Hugging Face Trainer plus what a fine-tuning run reports and saves."""

from __future__ import annotations

import logging
from typing import Any

from transformers import Trainer

from domainlm.metrics import perplexity


def tied_weights(model: Any) -> dict[str, str]:
    """``{tied key: its source}`` (``lm_head.weight``: ``transformer.wte.weight``) when the model ties them."""
    if not getattr(model.config, "tie_word_embeddings", False):
        return {}
    tied = getattr(model, "all_tied_weights_keys", None) or getattr(model, "_tied_weights_keys", None) or {}
    return tied if isinstance(tied, dict) else {}


def drop_tied_copies(model: Any, state_dict: dict[str, Any]) -> dict[str, Any]:
    """Without the tied output head (``lm_head.weight`` = ``wte.weight``) when it is a copy of its source.

    DeepSpeed hands the Trainer a state dict of copies, so the tie is no longer visible and the head
    would be saved twice (320 MB more for GPT2-XL in fp32). Loading ties it again.
    """
    tied = tied_weights(model)
    if not tied:
        return state_dict
    out = dict(state_dict)
    for key, source in tied.items():
        if (
            key in out
            and source in out
            and out[key].shape == out[source].shape
            and bool((out[key] == out[source]).all())
        ):
            del out[key]
    return out


class DomainTrainer(Trainer):
    """Adds perplexity next to every logged evaluation loss (token-weighted), and saves tied weights once.

    With ``layerwise_lr_decay`` or ``unfreeze_schedule`` (see ``domainlm.freezing``) the optimizer gets
    one parameter group per layer group, listed in ``output_dir/optimizer_groups.json``.
    """

    def __init__(
        self, *args: Any, layerwise_lr_decay: float | None = None, unfreeze_schedule: Any = None, **kwargs: Any
    ) -> None:
        self.layerwise_lr_decay = layerwise_lr_decay
        self.unfreeze_schedule = unfreeze_schedule
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model: Any = None) -> Any:
        if self.layerwise_lr_decay is None and self.unfreeze_schedule is None:
            return super().create_optimizer(model)
        if self.optimizer is None:
            self.optimizer = self._layer_group_optimizer(self.model if model is None else model)
        return self.optimizer

    def _layer_group_optimizer(self, model: Any) -> Any:
        from domainlm.freezing import parameter_groups

        args = self.args
        groups = parameter_groups(
            model,
            args.learning_rate,
            args.weight_decay,
            set(self.get_decay_parameter_names(model)),
            self.layerwise_lr_decay,
        )
        ds_config = getattr(args, "hf_deepspeed_config", None)
        if ds_config is not None and ds_config.is_offload():
            from deepspeed.ops.adam import DeepSpeedCPUAdam  # ZeRO-Offload needs DeepSpeed's CPU Adam

            optimizer = DeepSpeedCPUAdam(
                groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
                weight_decay=args.weight_decay, adamw_mode=True,
            )  # fmt: skip
        else:
            cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
            kwargs = {k: v for k, v in kwargs.items() if k not in ("params", "model", "optimizer_dict")}
            optimizer = cls(groups, **kwargs)
        if self.is_world_process_zero():
            from pathlib import Path

            from domainlm.tables import write_json

            # under ZeRO-3 a parameter holds a shard by now; ds_numel is its whole size
            size = lambda p: getattr(p, "ds_numel", p.numel())  # noqa: E731
            rows = [{k: g[k] for k in ("layer", "lr", "weight_decay")} | {"parameters": sum(size(p) for p in g["params"])}
                    for g in groups]  # fmt: skip
            if self.unfreeze_schedule is not None:  # "lr" is the group's rate once it trains; 0 until then
                from domainlm.freezing import n_layers_of

                schedule, n_layers = self.unfreeze_schedule, n_layers_of(model)
                unit = schedule.unit.rstrip("s")
                for row, g in zip(rows, groups, strict=True):
                    row[f"trains_from_{unit}"] = schedule.unlocked_at(g["depth"], n_layers)
            write_json(Path(args.output_dir) / "optimizer_groups.json", rows)
        return optimizer

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """The Trainer's; under ZeRO-3 the final model is saved with its weights
        (``distributed.gather_zero3_weights_on_save``), and a DeepSpeed config value that contradicts this
        run's (a scheduler's explicit ``total_num_steps``, known only now) is one line, not a ``ValueError``."""
        from domainlm.distributed import explain_config_mismatch, gather_zero3_weights_on_save

        if getattr(self.args, "hf_deepspeed_config", None) is not None:
            gather_zero3_weights_on_save(self.args)  # else ZeRO-3 saves a model without weights
        with explain_config_mismatch(self.args):
            return super().train(*args, **kwargs)

    def _get_learning_rate(self) -> float:
        """The rate logged as ``learning_rate``: with layer groups (``--layerwise_lr_decay``,
        ``--unfreeze_schedule``) the highest, the head's, as ``--learning_rate`` names it; the Trainer
        would log the first group's, the embeddings' (the lowest, and 0 while they are locked)."""
        if self.layerwise_lr_decay is None and self.unfreeze_schedule is None:
            return super()._get_learning_rate()
        try:
            rates = self.lr_scheduler.get_last_lr()
        except AssertionError:  # DeepSpeed before its first step: the Trainer's answer
            return super()._get_learning_rate()
        return float(max(float(r) for r in rates))

    def _init_training_state(
        self, max_steps: int, steps_per_epoch: int, epochs: int, resume_from_checkpoint: str | None, trial: Any
    ) -> tuple[int, int]:
        """The Trainer's, for a checkpoint at or past this run's last step: the Trainer would take one step
        more (checkpoint-N+1 of a run of N steps) and save those weights as this run's model."""
        install_filter("transformers.trainer_utils", _IntervalsApplyFilter)
        out = super()._init_training_state(max_steps, steps_per_epoch, epochs, resume_from_checkpoint, trial)
        if resume_from_checkpoint is not None:
            self._steps_of_this_run(resume_from_checkpoint, max_steps)
        step = self.state.global_step
        if resume_from_checkpoint is None or step < max_steps:
            return out
        if step > max_steps:
            from domainlm.errors import UserError

            raise UserError(
                f"{resume_from_checkpoint} has trained {step} steps, more than the {max_steps} of this run "
                "(--max_steps or --num_train_epochs), so nothing would train: raise them to continue from it, or "
                "start afresh (--overwrite_output_dir, without --resume_from_checkpoint)"
            )

        logging.getLogger(__name__).info(
            "%s is this run's last step (%d): nothing left to train; its weights are saved as the model",
            resume_from_checkpoint, step,
        )  # fmt: skip
        return epochs, 0  # every epoch done: the loop takes no step

    def _steps_of_this_run(self, checkpoint: str, max_steps: int) -> None:
        """The restored state holds the logging, evaluation and saving intervals of the run that saved it, and
        the Trainer follows them: a run resumed with ``--save_steps 1`` saved every 500 steps as before. The
        command line's apply, as for the schedule (``create_scheduler``); one line says which changed."""
        kinds = ("logging", "eval", "save")
        before = {k: getattr(self.state, f"{k}_steps") for k in kinds}
        self.state.compute_steps(self.args, max_steps)
        after = {k: getattr(self.state, f"{k}_steps") for k in kinds}
        whole = {k: int(v) if float(v).is_integer() else v for k, v in after.items()}  # the Trainer's 1.0: 1
        changed = [f"--{k}_steps {whole[k]} (it had {before[k]})" for k in kinds if after[k] != before[k]]
        if changed:
            logging.getLogger(__name__).info("resuming from %s with this run's %s", checkpoint, ", ".join(changed))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        """The Trainer's, then each group's rate as this run's schedule gives it at the restored step.

        The optimizer state holds the rate the saving run's schedule set for the next step. Resumed with
        another ``--max_steps`` or ``--num_train_epochs``, the schedule is another one: a run of 2 steps
        saves a rate decayed to 0, and a rerun with ``--max_steps 4`` would take its first step at 0.
        """
        super()._load_optimizer_and_scheduler(checkpoint)
        from torch.optim.lr_scheduler import LambdaLR

        scheduler = self.lr_scheduler
        if checkpoint is None or not isinstance(scheduler, LambdaLR):
            return
        import json
        from pathlib import Path

        try:
            saved = json.loads((Path(checkpoint) / "trainer_state.json").read_text())["max_steps"]
        except (OSError, ValueError, KeyError):
            return
        if saved == self.state.max_steps:  # the steps this run's schedule was made for
            return  # the same schedule: the saved rates are its own
        step = scheduler.last_epoch
        groups = self.optimizer.param_groups
        for group, base, rate in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
            group["lr"] = base * rate(step)
        logging.getLogger(__name__).info(
            "%s was saved under a schedule of %d steps: from step %d the rates follow this run's %d-step schedule",
            checkpoint, saved, step, self.state.max_steps,
        )  # fmt: skip

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        if self.unfreeze_schedule is None:
            return scheduler
        from torch.optim.lr_scheduler import LambdaLR

        from domainlm.errors import UserError
        from domainlm.freezing import gated_lambdas, n_layers_of

        if not isinstance(scheduler, LambdaLR):
            raise UserError(
                f"--unfreeze_schedule works with the Trainer's LambdaLR schedules, not {type(scheduler).__name__}"
            )
        opt = optimizer if optimizer is not None else self.optimizer
        lambdas = gated_lambdas(
            scheduler.lr_lambdas[0], opt.param_groups, self.unfreeze_schedule, n_layers_of(self.model),
            lambda: self.state.epoch or 0.0,
        )  # fmt: skip
        self.lr_scheduler = LambdaLR(opt, lambdas)
        return self.lr_scheduler

    def _finalize_training(self, *args: Any, **kwargs: Any) -> Any:
        """``train_loss`` averages every process, not only the first one's loss since the last log.

        Each logged ``loss`` is gathered over the processes, but the Trainer adds what is left after the
        last log as this process alone saw it: a short run on 2 ranks (fewer steps than
        ``--logging_steps``) reported rank 0's half of the data as the training loss.
        """
        from transformers.trainer_pt_utils import nested_gather

        loss = getattr(self, "_tr_loss", None)
        if loss is not None and self.args.world_size > 1:
            self._tr_loss = nested_gather(loss.detach(), self.args.parallel_mode).mean()
        return super()._finalize_training(*args, **kwargs)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        for key in [k for k in logs if k.endswith("_token_loss")]:  # compute_metrics' token-weighted loss
            logs[key[: -len("token_loss")] + "loss"] = logs.pop(key)
        for key in [k for k in logs if k.endswith("eval_loss")]:
            logs[key[: -len("loss")] + "perplexity"] = perplexity(logs[key])
        super().log(logs, *args, **kwargs)

    _evaluating = False

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """The Trainer's evaluation, whose ``eval_loss`` is token-weighted: the summed loss of every predicted
        token divided by their number, over the whole set and all ranks (``metrics.compute_metrics``, from
        the gathered per-token losses, each row counted once).

        The Trainer itself averages per-batch means, weighted by rows. Packed rows flattened into one row per
        batch (``CausalLMCollator(flatten=True)``) would then weigh a short last batch like a full one, and
        padded batches of short and long records weigh their tokens unequally.
        """
        shuffler = getattr(self.data_collator, "shuffler", None)
        saved, self._evaluating = self._evaluating, True
        try:
            if shuffler is None:
                return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            with shuffler.paused():  # evaluation sees records as written
                return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        finally:
            self._evaluating = saved

    def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
        """The Trainer's, except that with several ranks a packed batch keeps its rows apart (no ``flatten``).

        To even out the ranks' last batches the Trainer repeats rows, and drops them again when it gathers
        the predictions, by counting rows: a batch joined into one row would keep the repeats in the metrics.
        """
        collator = self.data_collator
        if self.args.world_size == 1 or not getattr(collator, "flatten", False):
            return super().get_eval_dataloader(eval_dataset)
        import dataclasses

        self.data_collator = dataclasses.replace(collator, flatten=False)
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = collator

    def compute_loss(
        self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        """The Trainer's loss; a training loss is shown to the divergence guard (domainlm/guards.py) before
        the backward pass, so a NaN or infinite loss stops the run before it reaches the weights (not during
        ``evaluate``: under DeepSpeed, ``model.training`` can still be True there)."""
        loss = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if not return_outputs and not self._evaluating:
            for callback in self.callback_handler.callbacks:
                if hasattr(callback, "check_loss"):
                    callback.check_loss(loss, self.state)
        return loss

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        """The Trainer's warnings after loading a checkpoint's weights, except "missing keys: ['lm_head.weight']":
        checkpoints hold a tied head once (``_save``), and loading its source loads it too."""
        tied = tied_weights(self.model)
        missing = [k for k in load_result.missing_keys if not (k in tied and tied[k] not in load_result.missing_keys)]
        if len(missing) < len(load_result.missing_keys) and hasattr(load_result, "_replace"):
            load_result = load_result._replace(missing_keys=missing)
        super()._issue_warnings_after_load(load_result)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if state_dict is not None:
            state_dict = drop_tied_copies(self.accelerator.unwrap_model(self.model), state_dict)
        super()._save(output_dir, state_dict=state_dict)


class _IntervalsApplyFilter(logging.Filter):
    """transformers warns that a resumed run's ``--logging_steps``, ``--eval_steps`` or ``--save_steps`` do not
    match the checkpoint's, which it would follow; ``DomainTrainer`` applies this run's and says so. Those lines
    of the warning go; another (a different batch size) stays."""

    HEAD = "Warning: The following arguments do not match the ones in the `trainer_state.json`"
    APPLIED = ("logging_steps:", "eval_steps:", "save_steps:")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(self.HEAD):
            return True
        head, *lines = message.split("\n\t")
        kept = [line for line in lines if not line.startswith(self.APPLIED)]
        if not kept:
            return False
        record.msg, record.args = "\n\t".join([head, *kept]), ()
        return True


def install_filter(logger_name: str, kind: type[logging.Filter]) -> None:
    """A ``kind`` filter on the logger ``logger_name``, once however often this is called."""
    target = logging.getLogger(logger_name)
    if not any(isinstance(f, kind) for f in target.filters):
        target.addFilter(kind())
