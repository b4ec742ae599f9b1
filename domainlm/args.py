"""Arguments of ``run_clm.py``: dataclasses parsed by ``HfArgumentParser``.

The interface is upstream run_clm's (``ModelArguments``, ``DataArguments``, Hugging Face's
``TrainingArguments``, or a single ``.json`` file as the only argument), plus the flags of the
transformers 4.x era that guides still print (``--evaluation_strategy``, ``--overwrite_output_dir``,
``--logging_dir``, ``--no_cuda``, ...), which are translated to their current form.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from domainlm.compiled_ops import check_build_locks
from domainlm.errors import UserError, one_line_errors

if TYPE_CHECKING:
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)

TRAIN_SUFFIXES = (".csv", ".json", ".jsonl", ".txt")


@dataclass
class ModelArguments:
    """Which model and tokenizer to start from."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A local model folder, or a hub name such as gpt2-xl. Leave empty to train from scratch."},
    )
    model_type: str | None = field(
        default=None, metadata={"help": "Architecture when training from scratch: gpt2 or gpt_neo."}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "From scratch only: config values such as n_layer=4,n_embd=256,n_head=4,n_positions=512."},
    )
    config_name: str | None = field(default=None, metadata={"help": "A config folder or name, if not the model's."})
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "A tokenizer folder (e.g. made by create_tokenizer.py), if not the model's."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where hub downloads are stored."})
    model_revision: str = field(default="main", metadata={"help": "Hub branch, tag or commit."})
    token: str | None = field(
        default=None,
        metadata={
            "help": "A model hub token, for private or gated models; without it, HF_TOKEN or the token saved by "
            "`hf auth login` is used."
        },
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Run the model's own code from the hub, for architectures transformers lacks."},
    )
    torch_dtype: Literal["auto", "bfloat16", "float16", "float32"] | None = field(
        default=None,
        metadata={
            "aliases": ["--dtype"],
            "help": "The dtype the weights are loaded in. Default float32, whatever the checkpoint holds (a model "
            "saved by a --bf16 run holds bfloat16): the weights --fp16 and --bf16 keep while they compute in 16 "
            "bits. auto: the checkpoint's dtype. bfloat16: pure bfloat16 training, half the memory of the weights, "
            "gradients and optimizer state, but updates smaller than bfloat16's precision are lost. float16: "
            "under --deepspeed only (its fp16 mode keeps float32 copies).",
        },
    )
    # Memory and speed (domainlm/modeling.py); --gradient_checkpointing and --torch_compile are TrainingArguments
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = field(
        default=None,
        metadata={
            "help": "Attention kernel. Default: the model's (sdpa for GPT-2, eager for GPT-Neo, which has no sdpa). "
            "flash_attention_2 needs a CUDA GPU, the flash-attn package and --bf16 or --fp16."
        },
    )
    fused_gelu: bool = field(
        default=False,
        metadata={
            "help": "Replace the Python gelu_new activation (GPT-2, GPT-Neo) by PyTorch's fused gelu_pytorch_tanh: "
            "the same function to about 1e-6, less activation memory, faster; saved in config.json."
        },
    )
    pad_vocab_to_multiple_of: int | None = field(
        default=None,
        metadata={
            "help": "Pad the embedding rows to a multiple of this (64 for GPU matmuls). The padded ids are never "
            "generated (suppressed in the generation config); config.vocab_size then exceeds len(tokenizer)."
        },
    )
    # What is trained (domainlm/freezing.py)
    unfreeze_last_n: int | None = field(
        default=None, metadata={"help": "Train only the last N blocks, the final norm and the head; freeze the rest."}
    )
    unfreeze_schedule: str | None = field(
        default=None,
        metadata={
            "help": 'Gradual unfreezing, "STEP:N,...": e.g. "0:2,100:4,200:all" (last 2 blocks, then 4, then all).'
        },
    )
    unfreeze_unit: Literal["steps", "epochs"] = field(
        default="steps", metadata={"help": "Whether --unfreeze_schedule counts optimizer steps or epochs."}
    )
    layerwise_lr_decay: float | None = field(
        default=None,
        metadata={
            "help": "Discriminative learning rates: the head learns at --learning_rate, each block below at D times "
            "the rate of the one above (e.g. 0.9), the position embeddings at D^(layers+1)."
        },
    )

    def __post_init__(self) -> None:
        dtypes = ("auto", "bfloat16", "float16", "float32")
        if self.torch_dtype is not None and self.torch_dtype not in dtypes:  # a JSON file's value is not checked
            raise UserError(f"--torch_dtype {self.torch_dtype}: use one of {', '.join(dtypes)}")
        if self.config_overrides and self.model_name_or_path:
            raise UserError("--config_overrides only applies when training from scratch (without --model_name_or_path)")
        if not self.model_name_or_path and not self.model_type and not self.config_name:
            raise UserError(
                "give --model_name_or_path (a folder or hub name), or --model_type gpt2 to start from scratch"
            )
        if self.layerwise_lr_decay is not None and not 0 < self.layerwise_lr_decay <= 1:
            raise UserError("--layerwise_lr_decay must be in (0, 1]")
        if self.unfreeze_last_n is not None and self.unfreeze_schedule:
            raise UserError("--unfreeze_last_n and --unfreeze_schedule exclude each other; pick one")
        if self.model_type and self.model_type not in ("gpt2", "gpt_neo"):
            raise UserError(f"--model_type {self.model_type}: supported types are gpt2 and gpt_neo")
        if self.pad_vocab_to_multiple_of is not None and self.pad_vocab_to_multiple_of < 1:
            raise UserError("--pad_vocab_to_multiple_of must be 1 or more (64 suits GPU matmuls)")
        if self.model_type and self.attn_implementation:
            from domainlm.modeling import check_attn_implementation

            check_attn_implementation(self.model_type, self.attn_implementation)


@dataclass
class DataArguments:
    """What to train on and how rows become sequences."""

    train_file: str | None = field(default=None, metadata={"help": "Training data: .csv, .json, .jsonl or .txt."})
    validation_file: str | None = field(default=None, metadata={"help": "Evaluation data, same formats."})
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Instead of --train_file: a dataset for datasets.load_dataset, as upstream run_clm (a hub name "
            "such as wikitext, or a local folder of data files such as train.csv and validation.csv), or a folder "
            "written by save_to_disk. Its train and validation splits are used."
        },
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "The configuration of --dataset_name, such as wikitext-2-raw-v1."}
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Not supported: splits are tokenised and packed whole. To train on part of a dataset, pass "
            "--max_train_samples (and --max_eval_samples)."
        },
    )
    text_column: str = field(
        default="text", metadata={"help": "Column that holds the text (csv/json files, --dataset_name)."}
    )
    validation_split_percentage: int = field(
        default=5,
        metadata={
            "help": "Without --validation_file (or a validation split of --dataset_name): the percentage of "
            "training rows held out."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training sequences."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many evaluation sequences."})
    block_size: int | None = field(
        default=None, metadata={"help": "Sequence length in tokens (default: the model's context, at most 1024)."}
    )
    sequence_mode: Literal["auto", "records", "packed", "concat"] = field(
        default="auto",
        metadata={
            "help": "records: one row per sequence, end-of-text appended, padded per batch. packed: records "
            "packed several to a block with per-record position ids, none attending to another. concat: rows "
            "joined with end-of-text and cut into block_size chunks. auto: records when rows are "
            "title<|SEP|>keywords<|SEP|>text, else concat."
        },
    )
    loss_on: Literal["all", "body"] = field(
        default="all",
        metadata={"help": "body: the title and keywords of each record carry no loss; the body and end-of-text do."},
    )
    shuffle_keywords: bool = field(
        default=False,
        metadata={"help": "Reshuffle each record's keyword order every epoch (deterministic under --seed)."},
    )
    overlong: Literal["drop", "truncate", "error"] = field(
        default="drop",
        metadata={
            "help": "records and packed modes: a row longer than block_size is dropped (counted and logged), "
            "truncated, or an error. concat cuts every row into blocks, so it has no such rows."
        },
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Tokenise again instead of using the cache."})
    keep_linebreaks: bool = field(default=True, metadata={"help": ".txt files: keep line breaks in each line."})

    def __post_init__(self) -> None:
        if self.streaming:
            raise UserError(
                "--streaming is not supported: run_clm.py tokenises and packs whole splits, so the dataset is "
                "downloaded and read whole; to train on part of it, pass --max_train_samples N (and "
                "--max_eval_samples N) instead"
            )
        if self.dataset_name:
            self._check_dataset_name()
        elif self.dataset_config_name:
            raise UserError(f"--dataset_config_name {self.dataset_config_name} needs --dataset_name")
        for flag in ("train_file", "validation_file"):
            path = getattr(self, flag)
            if path is not None and Path(path).suffix.lower() not in TRAIN_SUFFIXES:
                raise UserError(f"--{flag} {path}: use a {', '.join(TRAIN_SUFFIXES)} file")
        if not 0 <= self.validation_split_percentage < 100:
            raise UserError("--validation_split_percentage must be between 0 and 99")
        for flag in ("max_train_samples", "max_eval_samples"):
            if getattr(self, flag) is not None and getattr(self, flag) < 1:
                raise UserError(
                    f"--{flag} {getattr(self, flag)}: must be at least 1; leave it out to keep every sequence"
                )
        if self.block_size is not None and self.block_size < 1:
            raise UserError(
                f"--block_size {self.block_size}: must be at least 1; leave it out for the model's context (at most 1024)"
            )

    def _check_dataset_name(self) -> None:
        """The data comes one way; a file or a path that does not exist is said now, before any work."""
        from domainlm.tokenizer import looks_like_path

        name = self.dataset_name
        for flag in ("train_file", "validation_file"):
            if getattr(self, flag):
                raise UserError(
                    f"--dataset_name {name} and --{flag} {getattr(self, flag)} exclude each other: give the data "
                    "with --dataset_name (its train and validation splits) or with --train_file/--validation_file"
                )
        path = Path(name).expanduser()
        if path.is_file():
            raise UserError(f"--dataset_name {name} is a file: pass it as --train_file {name}")
        if not path.is_dir() and looks_like_path(name):
            raise UserError(f"--dataset_name {name}: no such folder")


@dataclass
class RunArguments:
    """How this run relates to earlier runs in the same output folder."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start afresh even if output_dir holds checkpoints or a model. Without it, training continues "
            "from the last checkpoint there, and a non-empty output_dir without one is refused (the 4.x behaviour)."
        },
    )
    # Long runs and what they show (domainlm/guards.py, domainlm/callbacks.py, domainlm/model_card.py)
    check_disk_space: bool = field(
        default=True,
        metadata={
            "help": "Before the first step, refuse to start when the checkpoints kept at once (size estimated "
            "from parameters, optimizer state and ZeRO stage) and the final model do not fit in the free space."
        },
    )
    max_skipped_steps: int = field(
        default=50,
        metadata={
            "help": "Stop after this many optimizer steps in a row skipped for overflowing fp16 gradients "
            "(0: never). A NaN or infinite loss always stops the run."
        },
    )
    eval_before_training: bool = field(
        default=False,
        metadata={"help": "Evaluate before the first step too: all_results.json and README.md show eval_before_*."},
    )
    sample_every_steps: int = field(
        default=0,
        metadata={
            "help": "Every N optimizer steps, generate from validation titles and keywords into "
            "output_dir/samples.jsonl (0: never). The training trajectory is unchanged."
        },
    )
    num_samples: int = field(default=3, metadata={"help": "Prompts sampled each time (--sample_every_steps)."})
    sample_max_new_tokens: int = field(default=64, metadata={"help": "Tokens generated per sample."})

    def __post_init__(self) -> None:
        for flag in ("max_skipped_steps", "sample_every_steps", "num_samples"):
            if getattr(self, flag) < 0:
                raise UserError(f"--{flag} must be 0 or more")
        if self.sample_max_new_tokens < 1:
            raise UserError("--sample_max_new_tokens must be 1 or more")


# 4.x-era flag -> current flag (None: accepted and handled here, not passed on).
LEGACY_FLAGS: dict[str, str | None] = {
    "evaluation_strategy": "eval_strategy",
    "no_cuda": "use_cpu",
    "per_gpu_train_batch_size": "per_device_train_batch_size",
    "per_gpu_eval_batch_size": "per_device_eval_batch_size",
    "gradient_checkpointing": "activation_checkpointing",  # transformers 5 deprecates the old name
    "logging_dir": None,
    "save_safetensors": None,
    "warmup_ratio": None,  # --warmup_steps below 1 is that fraction of the steps (warmup_from_ratio)
    "fp16_opt_level": None,  # apex settings: fp16 runs with PyTorch AMP, or DeepSpeed's own
    "fp16_backend": None,
    "half_precision_backend": None,
    "use_auth_token": None,  # a token as its value: --token; true: the saved login token, used anyway in 5.x
    "low_cpu_mem_usage": None,  # transformers 5 always loads weights this way
    "use_fast_tokenizer": None,  # transformers 5 has fast tokenizers only
}


# 4.x boolean switch -> (current flag, value) it stands for.
LEGACY_SWITCHES: dict[str, tuple[str, str]] = {
    "group_by_length": ("train_sampling_strategy", "group_by_length"),
    "adafactor": ("optim", "adafactor"),
}


def legacy_help() -> str:
    """The 4.x flags accepted besides the ones ``--help`` lists, and what each stands for."""
    meaning = {
        "logging_dir": "sets the TensorBoard folder",
        "save_safetensors": "accepted; weights are always safetensors",
        "warmup_ratio": "--warmup_steps with the same fraction below 1",
        "fp16_opt_level": "ignored: fp16 uses PyTorch AMP or DeepSpeed",
        "fp16_backend": "ignored, as --fp16_opt_level",
        "half_precision_backend": "ignored, as --fp16_opt_level",
        "use_auth_token": "--token with a token as its value; with true, the saved login token, used anyway",
        "low_cpu_mem_usage": "accepted; transformers 5 always loads weights so",
        "use_fast_tokenizer": "accepted; transformers 5 has fast tokenizers only",
    }
    items = [f"--{old} (--{new})" if new else f"--{old} ({meaning[old]})" for old, new in LEGACY_FLAGS.items()]
    items += [f"--{old} (--{new} {value})" for old, (new, value) in LEGACY_SWITCHES.items()]
    return "4.x flags, also accepted: " + ", ".join(items) + "."


# The words a boolean flag takes, as transformers' own parser reads them (``string_to_bool``).
TRUE_WORDS = ("true", "yes", "y", "t", "1")
FALSE_WORDS = ("false", "no", "n", "f", "0")


def parse_bool(value: str) -> bool:
    """An argparse ``type`` for boolean flags: ``--flag true``, ``--flag no``, ..."""
    import argparse

    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"{value!r}: give true or false")


def _is_true(value: Any) -> bool:
    return value is True or str(value).lower() in TRUE_WORDS


def _handle_dropped(name: str, value: Any) -> None:
    if name == "warmup_ratio":
        return  # translated after the other flags: it depends on --warmup_steps (warmup_from_ratio)
    if name in ("fp16_opt_level", "fp16_backend", "half_precision_backend"):
        logger.warning(
            "--%s %s is ignored: fp16 runs with PyTorch's AMP (DeepSpeed's own under --deepspeed)", name, value
        )
    elif name == "logging_dir" and value:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(value)
        logger.info("--logging_dir %s: TensorBoard logs go there", value)
    elif name == "save_safetensors" and str(value).lower() in ("false", "0", "no"):
        logger.warning("--save_safetensors false is ignored: weights are always saved as safetensors")
    elif name == "use_fast_tokenizer" and not _is_true(value):
        logger.warning("--use_fast_tokenizer false is ignored: transformers 5 has fast tokenizers only")
    elif name == "use_auth_token" and _is_true(value):
        logger.info("--use_auth_token: the token saved by `hf auth login` (or HF_TOKEN) is used without it")


def _auth_token(name: str, value: Any) -> str | None:
    """The token that ``--use_auth_token TOKEN`` (4.x took a token as well as true/false) gives, else None."""
    if name != "use_auth_token" or not isinstance(value, str):
        return None
    return None if value.lower() in TRUE_WORDS + FALSE_WORDS else value


def warmup_from_ratio(ratio: Any, warmup_steps: Any) -> float | None:
    """``--warmup_ratio`` (transformers 4.x) as the ``--warmup_steps`` value that means the same in 5.x,
    where a value below 1 is a fraction of the training steps; None where ``--warmup_steps`` over 0
    decides instead, as it did in 4.x. A ratio outside [0, 1) is a ``UserError``."""
    try:
        fraction = float(ratio)
    except (TypeError, ValueError):
        fraction = -1.0
    if not 0 <= fraction < 1:
        raise UserError(
            f"--warmup_ratio {ratio}: give a fraction of the training steps from 0 to below 1, such as 0.1, "
            "or --warmup_steps N"
        )
    try:
        steps = float(warmup_steps or 0)
    except (TypeError, ValueError):
        steps = 0.0  # the parser names the bad value
    if steps > 0:
        logger.warning(
            "--warmup_steps %s decides and --warmup_ratio %s is ignored, as in transformers 4.x", warmup_steps, ratio
        )
        return None
    return fraction


def _flag_value(argv: list[str], name: str) -> str | None:
    """The last value given to ``--name`` on a command line, else None."""
    found = None
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            found = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(argv):
            found = argv[i + 1]
    return found


def translate_legacy_argv(argv: list[str]) -> list[str]:
    """Rewrite 4.x flags in a command line to their current names; drop the ones handled here."""
    out: list[str] = []
    ratio = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--"):
            out.append(arg)
            continue
        name, eq, value = arg[2:].partition("=")
        if name in LEGACY_SWITCHES:
            if not eq and i < len(argv) and argv[i].lower() in TRUE_WORDS + FALSE_WORDS:
                value, eq = argv[i], "="
                i += 1
            if not eq or _is_true(value):
                new, new_value = LEGACY_SWITCHES[name]
                logger.info("--%s is the 4.x form of --%s %s", name, new, new_value)
                out += [f"--{new}", new_value]
            continue
        if name not in LEGACY_FLAGS:
            out.append(arg)
            continue
        new = LEGACY_FLAGS[name]
        if not eq and i < len(argv) and not argv[i].startswith("--"):
            value = argv[i]
            i += 1
            eq = "="
        if new is None:
            if name == "warmup_ratio":
                ratio = value if eq else ""
            token = _auth_token(name, value if eq else True)
            if token:
                out.append(f"--token={token}")
                continue
            _handle_dropped(name, value if eq else True)
            continue
        logger.info("--%s is the 4.x name of --%s", name, new)
        out.append(f"--{new}" + (f"={value}" if eq else ""))
    if ratio is not None:
        fraction = warmup_from_ratio(ratio, _flag_value(out, "warmup_steps"))
        if fraction is not None:
            out += ["--warmup_steps", str(fraction)]  # the last --warmup_steps is the one parsed
    return out


def translate_legacy_dict(options: dict[str, Any]) -> dict[str, Any]:
    """A JSON file's options with the 4.x names translated (and ``dtype``, the command line's alias of
    ``--torch_dtype``, as ``torch_dtype``)."""
    out: dict[str, Any] = {}
    if "dtype" in options and "torch_dtype" in options:
        raise UserError('give "torch_dtype" or "dtype" (the same option), not both')
    for key, value in options.items():
        if key == "dtype":
            key = "torch_dtype"
        if key in LEGACY_SWITCHES:
            if _is_true(value):
                key, value = LEGACY_SWITCHES[key]
            else:
                continue
        elif key in LEGACY_FLAGS:
            new = LEGACY_FLAGS[key]
            if new is None:
                if _auth_token(key, value):
                    out["token"] = value
                    continue
                _handle_dropped(key, value)
                continue
            key = new
        out[key] = value
    if "warmup_ratio" in options:
        fraction = warmup_from_ratio(options["warmup_ratio"], out.get("warmup_steps"))
        if fraction is not None:
            out["warmup_steps"] = fraction
    return out


def resolve_precision(args: TrainingArguments) -> TrainingArguments:
    """``--fp16`` without a CUDA GPU falls back to fp32, with a warning (CPU kernels lack fp16)."""
    import torch

    if args.fp16 and not torch.cuda.is_available():
        logger.warning("--fp16 needs a CUDA GPU and none was found: training in fp32 instead")
        return dataclasses.replace(args, fp16=False, fp16_full_eval=False)
    return args


def without_gpu(args: TrainingArguments) -> TrainingArguments:
    """No pinned memory without an accelerator: there it does nothing, and each DataLoader warns about it."""
    import torch

    if args.dataloader_pin_memory and not torch.cuda.is_available():
        args.dataloader_pin_memory = False  # read when the DataLoaders are made
    return args


def _asks_bf16(argv: list[str]) -> bool:
    """``--bf16`` / ``--bf16 true`` / ``--bf16=true`` (or the ``_full_eval`` variant) on a command line."""
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if flag not in ("--bf16", "--bf16_full_eval"):
            continue
        if eq:
            return value.lower() in TRUE_WORDS
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        return nxt is None or nxt.startswith("--") or nxt.lower() in TRUE_WORDS
    return False


def cpu_bf16(argv: list[str] | None = None, options: dict[str, Any] | None = None) -> None:
    """``--bf16`` without a CUDA GPU trains on the CPU in bfloat16, as the user asked: add ``--use_cpu``,
    which transformers otherwise demands in an error (in place, with a warning). The Trainer then
    autocasts to bfloat16 and keeps float32 weights; under DeepSpeed, its bf16 mode holds the weights in
    bfloat16 (and saves them so) with float32 master copies, as on a GPU (both checked on 2 CPU cores)."""
    import torch

    if torch.cuda.is_available():
        return
    if argv is not None and _asks_bf16(argv) and "--use_cpu" not in argv:
        argv.append("--use_cpu")
    elif options is not None and (options.get("bf16") or options.get("bf16_full_eval")) and "use_cpu" not in options:
        options["use_cpu"] = True
    else:
        return
    logger.warning("--bf16 without a CUDA GPU: training on the CPU in bfloat16 (--use_cpu added)")


def read_json_file(path: str | os.PathLike) -> Any:
    """A JSON file's content; a malformed one is a ``UserError`` naming the line."""
    from domainlm.tables import read_text

    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None


def deepspeed_flag(argv: list[str]) -> str | None:
    """The value of ``--deepspeed`` on a command line ("" when the flag has none), else None."""
    for i, arg in enumerate(argv):
        if arg == "--deepspeed":
            return argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else ""
        if arg.startswith("--deepspeed="):
            return arg.split("=", 1)[1]
    return None


def prepare_deepspeed(config: Any) -> None:
    """Before ``TrainingArguments`` start DeepSpeed: its config file exists and parses, no stale build lock
    would make it wait for good, and a run without a launcher gets a one-process environment."""
    if isinstance(config, (str, os.PathLike)):
        if not Path(config).is_file():
            raise UserError(f"--deepspeed {config}: no such file")
        if not isinstance(read_json_file(config), dict):
            raise UserError(f"{config}: expected a JSON object of DeepSpeed settings")
    check_build_locks()  # parsing starts DeepSpeed, which would wait on a stale lock for good
    from domainlm.distributed import single_process_env

    single_process_env()


def describe_report_to(parser: Any) -> None:
    """``--help`` shows run_clm.py's default for ``--report_to`` (TensorBoard, set by
    ``domainlm.train.default_report_to``), not transformers 5's ``none``; and the flag takes several
    values, as in 4.x (``--report_to tensorboard wandb``), where 5.x's parser takes one."""
    for action in parser._actions:
        if "--report_to" in action.option_strings:
            action.default = "tensorboard"
            action.nargs = "+"
            action.help = (
                "Where training logs go: tensorboard (output_dir/runs, or --logging_dir), none, all (every "
                "installed integration), or several, such as tensorboard wandb."
            )


def check_report_to(report_to: Any) -> None:
    """Every integration ``--report_to`` names exists and is installed; else one line, before any work
    (the Trainer raises when it is built, after the model and data have loaded)."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    installed = get_available_reporting_integrations()
    both = [name for name in names if name in ("all", "none")]
    if both and len(names) > 1:
        raise UserError(
            f"--report_to {' '.join(names)}: {both[0]} stands alone; give it alone, or name the integrations"
        )
    for name in names:
        if name in ("all", "none"):
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            raise UserError(
                f"--report_to {name}: no such integration; use tensorboard (the default), none, all, or one of "
                f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))}"
            )
        if name not in installed and name not in ("azure_ml", "flyte"):  # which transformers' list leaves out
            raise UserError(
                f"--report_to {name}: its package is not installed; install it (pip install {name.replace('_', '-')}), "
                f"or use {' or '.join([*installed, 'none'])}"
            )


def check_evaluation_folder(model_args: ModelArguments, output_dir: str) -> None:
    """``--do_eval`` alone writes its figures into ``output_dir/all_results.json``, beside those of the model
    trained there (``domainlm.train.evaluation_only_results``): only when it evaluates that very model."""
    out = Path(output_dir)
    if not ((out / "all_results.json").is_file() and (out / "config.json").is_file()):
        return
    model = model_args.model_name_or_path
    if model and Path(model).exists() and Path(model).resolve() == out.resolve():
        return
    raise UserError(
        f"--output_dir {output_dir} holds a trained model and its results; evaluating another model "
        f"(--model_name_or_path {model}) would put its figures among them: give another --output_dir, or "
        f"--model_name_or_path {output_dir} to evaluate that model"
    )


@contextlib.contextmanager
def values_checked_by_transformers() -> Iterator[None]:
    """``TrainingArguments`` check some combinations themselves (``--fp16`` with ``--bf16``,
    ``--load_best_model_at_end`` with strategies that differ, ``--logging_steps 0``) and raise a
    ``ValueError``, some of several lines: one line instead of a traceback."""
    try:
        yield
    except ValueError as err:
        if "not used by the HfArgumentParser" in str(err):
            raise  # unknown flags: said by the caller
        raise UserError(" ".join(str(err).split())) from None


# Values the Trainer takes without a check and fails on later, once the model and data have loaded (a
# division by zero, a DataLoader's or the optimizer's ValueError): flag -> the least it may be.
LEAST_VALUES: dict[str, float] = {
    "per_device_train_batch_size": 1,
    "per_device_eval_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "eval_accumulation_steps": 1,
    "learning_rate": 0,
    "weight_decay": 0,
    "dataloader_num_workers": 0,
    "seed": 0,
}


def check_training_values(training_args: TrainingArguments) -> None:
    for flag, least in LEAST_VALUES.items():
        value = getattr(training_args, flag, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UserError(f"--{flag} {value!r}: must be a number")  # a JSON file's "5e-5" in quotes
        if value is not None and value < least:
            what = "at least 1" if least == 1 else "0 or more"
            raise UserError(f"--{flag} {value:g}: must be {what}")
    if not training_args.seed < 2**32:
        raise UserError(f"--seed {training_args.seed}: must be below 2**32 (4294967296)")


def parse_args(
    argv: list[str] | None = None,
) -> tuple[ModelArguments, DataArguments, RunArguments, TrainingArguments]:
    from transformers import HfArgumentParser, TrainingArguments

    from domainlm.distributed import explain_port_in_use

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = one_line_errors(HfArgumentParser((ModelArguments, DataArguments, RunArguments, TrainingArguments)))
    parser.epilog = legacy_help()
    describe_report_to(parser)
    if len(argv) == 1 and argv[0].endswith(".json"):
        options = read_json_file(argv[0])
        if not isinstance(options, dict):
            raise UserError(f'{argv[0]}: expected a JSON object of options, such as {{"do_train": true}}')
        options = translate_legacy_dict(options)
        cpu_bf16(options=options)
        known = {f.name for dtype in parser.dataclass_types for f in dataclasses.fields(dtype)}
        unknown = sorted(set(options) - known)
        if unknown:  # before the dataclasses check their values: those errors would hide this one
            raise UserError(f"{argv[0]}: unknown options {unknown}; see python run_clm.py --help")
        if options.get("deepspeed"):
            prepare_deepspeed(options["deepspeed"])
        with explain_port_in_use(), values_checked_by_transformers():
            model_args, data_args, run_args, training_args = parser.parse_dict(options)
    else:
        try:
            argv = translate_legacy_argv(argv)
            _, unknown = parser.parse_known_args(argv)
            if unknown:  # before the dataclasses check their values: those errors would hide this one
                raise UserError(f"unknown flags {unknown}; see python run_clm.py --help")
            cpu_bf16(argv)
            config = deepspeed_flag(argv)
            if config:
                prepare_deepspeed(config)
            with explain_port_in_use(), values_checked_by_transformers():
                model_args, data_args, run_args, training_args = parser.parse_args_into_dataclasses(args=argv)
        except ValueError as err:
            if "not used by the HfArgumentParser" in str(err):
                unknown = str(err).split(":", 1)[1].strip()
                raise UserError(f"unknown flags {unknown}; see python run_clm.py --help") from None
            raise
    from domainlm.tables import check_output_dir

    check_output_dir(training_args.output_dir)
    if not (training_args.do_train or training_args.do_eval):
        raise UserError("nothing to do: pass --do_train and/or --do_eval")
    check_report_to(training_args.report_to)
    check_training_values(training_args)
    if training_args.do_train and not (data_args.train_file or data_args.dataset_name):
        raise UserError("--do_train needs --train_file or --dataset_name")
    if training_args.do_train and training_args.max_steps == 0:  # the Trainer would take one step, then stop
        raise UserError("--max_steps 0: must be at least 1; leave it out to train for --num_train_epochs")
    if training_args.do_train and training_args.max_steps < 0 and training_args.num_train_epochs <= 0:
        raise UserError(
            f"--num_train_epochs {training_args.num_train_epochs:g}: must be above 0, or nothing trains and the "
            "starting weights are saved as the fine-tuned model; or give --max_steps"
        )
    if training_args.do_eval and not (data_args.validation_file or data_args.train_file or data_args.dataset_name):
        raise UserError("--do_eval needs --validation_file or --dataset_name (or --train_file to hold out a split)")
    if training_args.do_eval and not training_args.do_train:
        check_evaluation_folder(model_args, training_args.output_dir)
    if run_args.eval_before_training and not training_args.do_eval:  # before the model and the data load
        raise UserError("--eval_before_training needs --do_eval (and a validation split)")
    training_args = without_gpu(resolve_precision(training_args))
    if model_args.torch_dtype not in (None, "auto"):  # auto: once the checkpoint's dtype is known
        import torch

        from domainlm.modeling import check_training_dtype

        dtype = getattr(torch, model_args.torch_dtype)
        check_training_dtype(dtype, training_args, f"--torch_dtype {model_args.torch_dtype}")
    if training_args.deepspeed:
        from domainlm.distributed import align_world_size, check_deepspeed_config

        align_world_size(training_args)  # the batch values the check compares count every rank
        check_deepspeed_config(training_args)  # explicit values that contradict the flags: one line, now
    return model_args, data_args, run_args, training_args
