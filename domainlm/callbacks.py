"""Seeing what a run does without changing it: samples during training, evaluation before the first step.

Both draw random numbers (sampling; the evaluation data loader's seed), so both run inside
``forked_rng``: Python's, NumPy's and torch's generators are put back afterwards, and a run with
samples and an evaluation before training ends with the same weights as a run without.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from domainlm.template import format_prompt, is_record, parse_record

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, TrainerControl, TrainerState, TrainingArguments

logger = logging.getLogger(__name__)

SAMPLES_FILE = "samples.jsonl"


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's and torch's random states (CPU and every CUDA device)."""
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def forked_rng() -> Iterator[None]:
    """Random numbers drawn inside do not change those drawn after."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


# --- samples -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplePrompt:
    prompt: str
    title: str | None = None
    keywords: str | None = None


def sample_prompts(texts: Sequence[str | None], n: int, words: int = 8) -> list[SamplePrompt]:
    """Prompts from the first ``n`` usable rows: ``title<|SEP|>keywords<|SEP|>`` for record rows (the
    template's ``format_prompt``, as generation builds them), else the row's first ``words`` words."""
    out: list[SamplePrompt] = []
    for text in texts:
        if len(out) >= n:
            break
        if not text or not text.strip():
            continue
        if is_record(text):
            rec = parse_record(text)
            out.append(SamplePrompt(format_prompt(rec.title, rec.keywords), rec.title, ", ".join(rec.keywords)))
        else:
            out.append(SamplePrompt(" ".join(text.split()[:words])))
    return out


class SampleCallback(TrainerCallback):
    """Every ``every`` steps, one generated text per prompt appended to ``output_dir/samples.jsonl``.

    Sampling is seeded (``seed + i`` for prompt i), so the samples of two steps differ only by what the
    model learned in between, and runs inside ``forked_rng`` so training draws the same numbers as
    without it. Every process generates (ZeRO-3 needs them all to gather the weights); the main one writes.
    """

    def __init__(
        self,
        prompts: Sequence[SamplePrompt],
        tokenizer: PreTrainedTokenizerBase,
        every: int,
        max_new_tokens: int = 64,
        seed: int = 0,
    ):
        self.prompts = list(prompts)
        self.tokenizer = tokenizer
        self.every = every
        self.max_new_tokens = max_new_tokens
        self.seed = seed

    def path(self, args: TrainingArguments) -> Path:
        return Path(args.output_dir) / SAMPLES_FILE

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """Keep the samples of steps up to where this run starts: none for a new run, those before the
        checkpoint for a resumed one (a killed run may have written some after it)."""
        path = self.path(args)
        if not args.should_save or not path.is_file():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines(): a text may hold U+2028
            try:
                if json.loads(line)["step"] <= state.global_step:
                    kept.append(line + "\n")
            except (ValueError, KeyError, TypeError):
                continue
        from domainlm.tables import atomic_write

        with atomic_write(path, "w", encoding="utf-8") as f:
            f.writelines(kept)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        model = kwargs.get("model")
        if self.every > 0 and self.prompts and model is not None and state.global_step % self.every == 0:
            rows = self.generate(model, state)
            if args.should_save:
                path = self.path(args)
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="utf-8") as f:
                    for row in rows:
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def generate(self, model: Any, state: TrainerState) -> list[dict[str, Any]]:
        import torch
        from transformers import LogitsProcessorList

        from domainlm.generation import SeparatorLimit
        from domainlm.modeling import context_length
        from domainlm.template import SEP_TOKEN

        context = context_length(model.config)
        device = next(model.parameters()).device
        sep = self.tokenizer.get_vocab().get(SEP_TOKEN)
        layout = LogitsProcessorList([SeparatorLimit(sep)] if sep is not None else [])  # as generate.py
        rows = []
        was_training = model.training
        model.eval()
        try:
            with forked_rng(), torch.no_grad():
                for i, p in enumerate(self.prompts):
                    enc = self.tokenizer(p.prompt, return_tensors="pt").to(device)
                    n_prompt = enc["input_ids"].shape[1]
                    new = min(self.max_new_tokens, context - n_prompt)
                    if new <= 0:
                        continue
                    torch.manual_seed(self.seed + i)
                    out = model.generate(**enc, max_length=n_prompt + new, use_cache=True, logits_processor=layout)
                    text = self.tokenizer.decode(out[0, n_prompt:], skip_special_tokens=True)
                    rows.append({"step": state.global_step, "epoch": state.epoch, **asdict(p), "text": text})
        finally:
            model.train(was_training)
        return rows


# --- evaluation before training ----------------------------------------------------------------------


_SPEED = ("runtime", "per_second", "preparation_time")


class EvalBeforeTraining(TrainerCallback):
    """Keeps the metrics of the Trainer's evaluation before the first step (``eval_on_start``), and puts
    back the random state that evaluation used, so training goes on as if it had not run."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] | None = None
        self._saved: dict[str, Any] | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self._saved = rng_state() if args.eval_on_start else None

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if self._saved is None:
            return
        self.metrics = dict(kwargs.get("metrics") or {})
        set_rng_state(self._saved)
        self._saved = None

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """A resumed run does not evaluate before its first step (that would be the checkpoint's weights):
        the figures are those of the interrupted run, at step 0 of the history its checkpoint brought."""
        if self.metrics is None:
            first = next((e for e in state.log_history if e.get("step") == 0 and "eval_loss" in e), None)
            self.metrics = dict(first) if first else None

    def results(self) -> dict[str, float]:
        """``eval_before_loss``, ``eval_before_perplexity``, ... (empty when it did not run)."""
        from domainlm.metrics import perplexity

        if not self.metrics:
            return {}
        out = {
            "eval_before_" + k[len("eval_") :]: v
            for k, v in self.metrics.items()
            if k.startswith("eval_") and isinstance(v, (int, float)) and not k.endswith(_SPEED)
        }
        if "eval_before_loss" in out:
            out["eval_before_perplexity"] = perplexity(out["eval_before_loss"])
        return out
