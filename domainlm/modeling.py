"""Loading or building the model and tokenizer, and making the saved folder generate well.

A local folder is checked before loading, so that a folder without weights or a tokenizer gets one
line saying what is missing. A name that is not a local folder goes to the model hub (``gpt2-xl``
works for users who have it); offline, the error says which folder to pass instead.

The memory and speed switches of ``ModelArguments`` are applied here, where the model is built:
the attention kernel (``--attn_implementation``), the fused GELU (``--fused_gelu``) and embedding rows
padded to a multiple (``--pad_vocab_to_multiple_of``), whose extra ids the generation config suppresses
(with ``<|pad|>``).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domainlm.errors import UserError, first_line
from domainlm.hub import load_by_name
from domainlm.tokenizer import (
    TOKENIZER_FILES,
    SpecialSeparatorError,
    check_pretrained_name,
    ensure_special_tokens,
    looks_like_path,
)

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase, TrainingArguments

    from domainlm.args import ModelArguments

logger = logging.getLogger(__name__)

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

# Attention kernels each architecture has in transformers 5.x; GPT-Neo has no sdpa path.
ATTN_IMPLEMENTATIONS = {"gpt2": ("eager", "sdpa", "flash_attention_2"), "gpt_neo": ("eager", "flash_attention_2")}


def _hub_load(loader: Any, name: str, flag: str, what: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(name)`` for a hub name, with a one-line error when it cannot be had
    (``domainlm.hub``: one short request decides between the hub and the local cache).

    A name that can only be a path (``domainlm.tokenizer.looks_like_path``) is a folder that does not
    exist, and the error says so.
    """
    if looks_like_path(name):
        raise UserError(f"{flag} {name}: no such folder")
    return load_by_name(
        lambda local: loader.from_pretrained(name, local_files_only=local, **kwargs),
        name,
        flag,
        what,
        "pass a local folder that holds it",
    )


def _local_load(
    loader: Any, name: str, flag: str, what: str, remedy: str = "copy the folder again, or save it again", **kwargs: Any
) -> Any:
    """``loader.from_pretrained(name)`` for a local folder, with a one-line error when one of its files is
    damaged (cut short by a copy, not JSON, not safetensors): the library's errors are tracebacks.
    ``remedy`` ends the error: what to do about it."""
    import json

    try:
        return loader.from_pretrained(name, **kwargs)
    except Exception as err:  # what a damaged config.json, tokenizer file or weights file raises
        damaged = isinstance(err, (OSError, json.JSONDecodeError, UnicodeDecodeError))
        # safetensors' own error type; the tokenizers library raises a bare Exception for a tokenizer.json
        # that is JSON but not a tokenizer's
        if not damaged and type(err).__name__ != "SafetensorError" and type(err) is not Exception:
            raise  # anything else (an attention kernel that cannot run, ...) is said by the caller
        raise UserError(
            f"{flag} {name}: its {what} cannot be loaded ({type(err).__name__}: {first_line(err)}); a file of the "
            f"folder is damaged or incomplete: {remedy}"
        ) from None


def hub_kwargs(model_args: ModelArguments) -> dict[str, Any]:
    """What every ``from_pretrained`` of the run takes: where hub downloads go, which revision, the token
    and whether the model's own code may run."""
    kwargs: dict[str, Any] = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision}
    if model_args.token:
        kwargs["token"] = model_args.token
    if model_args.trust_remote_code:
        kwargs["trust_remote_code"] = True
    return kwargs


def weight_dtype(model_args: ModelArguments) -> Any:
    """The dtype of ``--torch_dtype`` (``"auto"`` as it is); float32 when it is not given.

    transformers 5 loads a checkpoint in its own dtype by default: a model saved by a ``--bf16`` run would
    then train in pure bfloat16 when fine-tuned again, without float32 weights under the 16-bit compute.
    """
    import torch

    name = model_args.torch_dtype or "float32"
    return name if name == "auto" else getattr(torch, name)


def check_training_dtype(dtype: Any, training_args: TrainingArguments, origin: str) -> None:
    """Refuse weights that training without DeepSpeed cannot update well; warn for pure bfloat16.

    ``origin`` names where the dtype comes from (``--torch_dtype float16``). DeepSpeed casts the weights to
    its config's precision and keeps float32 copies, so under ``--deepspeed`` any dtype will do.
    """
    import torch

    if not training_args.do_train or training_args.deepspeed or dtype == torch.float32:
        return
    if dtype == torch.float16:
        raise UserError(
            f"{origin}: float16 weights trained without float32 copies lose small updates and overflow; "
            "leave --torch_dtype out (float32 weights) and pass --fp16 for 16-bit compute, or train under --deepspeed"
        )
    if dtype == torch.bfloat16 and training_args.fp16:
        raise UserError(f"{origin} with --fp16: bfloat16 weights compute in bfloat16; pass --bf16 instead of --fp16")
    if dtype == torch.bfloat16:
        logger.warning(
            "%s: pure bfloat16 training; updates smaller than bfloat16's precision (1/256 of a weight) are lost. "
            "For float32 weights under bfloat16 compute, leave --torch_dtype out and pass --bf16",
            origin,
        )


def context_length(config: PretrainedConfig) -> int:
    for key in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024


def load_tokenizer(model_args: ModelArguments) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    name = model_args.tokenizer_name or model_args.model_name_or_path
    flag = "--tokenizer_name" if model_args.tokenizer_name else "--model_name_or_path"
    if not name:
        raise UserError("training from scratch needs --tokenizer_name DIR (create_tokenizer.py makes one)")
    kwargs = hub_kwargs(model_args)
    if Path(name).exists():
        hint = "make one with create_tokenizer.py or pass --tokenizer_name"
        check_pretrained_name(name, flag, "tokenizer", TOKENIZER_FILES, hint)
        tokenizer = _local_load(AutoTokenizer, name, flag, "tokenizer", **kwargs)
    else:
        tokenizer = _hub_load(AutoTokenizer, name, flag, "tokenizer", **kwargs)
    try:
        ensure_special_tokens(tokenizer)
    except SpecialSeparatorError as err:
        raise UserError(f"{flag} {name}: {err}") from None
    return tokenizer


def load_config(model_args: ModelArguments) -> PretrainedConfig:
    from transformers import AutoConfig

    kwargs = hub_kwargs(model_args)
    name = model_args.config_name or model_args.model_name_or_path
    if name:
        flag = "--config_name" if model_args.config_name else "--model_name_or_path"
        path = Path(name)
        if path.exists():
            if not (path / "config.json").is_file():
                raise UserError(f"{flag} {name}: no config.json in that folder; is it a model folder?")
            return _local_load(AutoConfig, name, flag, "config", **kwargs)
        return _hub_load(AutoConfig, name, flag, "config", **kwargs)
    config = AutoConfig.for_model(model_args.model_type)
    if model_args.config_overrides:
        try:
            config.update_from_string(model_args.config_overrides)
        except ValueError as err:
            raise UserError(f"--config_overrides {model_args.config_overrides!r}: {err}") from None
    if config.model_type == "gpt_neo":
        match_neo_layers(config)
    return config


def match_neo_layers(config: PretrainedConfig) -> None:
    """GPT-Neo's global/local attention pattern for the number of layers the overrides ask for.

    The pattern (``attention_types``, a nested list that ``--config_overrides`` cannot express) defaults
    to 24 layers; with ``num_layers=2`` the model builds but ``save_pretrained`` refuses the config.
    Alternate global and local as GPT-Neo does: [global, local, global, local, ...].
    """
    n = config.num_layers
    if len(config.attention_layers) == n:
        return
    config.attention_types = neo_attention_types(n)
    config.attention_layers = config.expand_attention_types_params(config.attention_types)


def neo_attention_types(n: int) -> list[Any]:
    """GPT-Neo's ``attention_types`` for ``n`` layers: global and local in turn, starting global."""
    return [[["global", "local"], n // 2]] + ([[["global"], 1]] if n % 2 else [])


def check_attn_implementation(model_type: str, attn: str) -> None:
    """One clear line for a kernel the architecture or this machine cannot run."""
    supported = ATTN_IMPLEMENTATIONS.get(model_type)
    if supported is not None and attn not in supported:
        raise UserError(
            f"--attn_implementation {attn}: {model_type} supports only {' and '.join(supported)}"
            + (" (GPT-Neo has no sdpa path in transformers)" if model_type == "gpt_neo" else "")
        )
    if attn == "flash_attention_2":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--attn_implementation flash_attention_2 needs a CUDA GPU; use sdpa or eager on CPU")
        if importlib.util.find_spec("flash_attn") is None:
            raise UserError(
                "--attn_implementation flash_attention_2 needs the flash-attn package (pip install flash-attn)"
            )


def check_flash_window(config: PretrainedConfig, block_size: int) -> None:
    """Refuse GPT-Neo on ``flash_attention_2`` with sequences longer than its local layers' window.

    transformers' GPT-Neo flash class runs every layer as global attention: a local layer's token then
    sees more than the ``window_size`` tokens the model was trained with, and sequences longer than
    the window give other results than the model's own (eager) attention.
    """
    if config.model_type != "gpt_neo" or config._attn_implementation != "flash_attention_2":
        return
    window = getattr(config, "window_size", None)
    if window and "local" in getattr(config, "attention_layers", ()) and block_size > window:
        raise UserError(
            f"--attn_implementation flash_attention_2 with GPT-Neo: transformers' flash path ignores the local "
            f"layers' window of {window} tokens, so sequences of up to {block_size} tokens would not be attended "
            f"as the model was trained; use --attn_implementation eager, or --block_size {window}"
        )


def use_fused_gelu(config: PretrainedConfig) -> bool:
    """GPT-2's and GPT-Neo's ``gelu_new`` (tanh GELU written out in Python, five kernels and their saved
    intermediates) replaced by ``gelu_pytorch_tanh``, the same formula in one fused kernel."""
    act = getattr(config, "activation_function", None)
    if act == "gelu_new":
        config.activation_function = "gelu_pytorch_tanh"
        logger.info("--fused_gelu: activation gelu_new -> gelu_pytorch_tanh")
        return True
    if act != "gelu_pytorch_tanh":
        logger.warning("--fused_gelu: the model's activation is %s, not gelu_new; left as it is", act)
    return False


def precision_warning(config: PretrainedConfig, fp16: bool) -> str | None:
    """The warning for a precision known to go wrong with this architecture, or None."""
    if fp16 and config.model_type == "gpt_neo":
        return (
            "--fp16 with GPT-Neo: it was trained in bfloat16 and its activations are known to overflow fp16 "
            "(NaN losses, or step after step skipped); prefer --bf16 on a GPU that has it (A100, H100, ...), or fp32"
        )
    return None


def load_model(
    model_args: ModelArguments,
    tokenizer: PreTrainedTokenizerBase,
    training_args: TrainingArguments | None = None,
) -> PreTrainedModel:
    """The pretrained model, or a new one from a config; embeddings resized to the tokenizer.

    ``training_args``, when given, is checked against the model (a precision it is known to break in).
    """
    from transformers import AutoModelForCausalLM

    config = load_config(model_args)
    kwargs: dict[str, Any] = {}
    if model_args.attn_implementation:
        check_attn_implementation(config.model_type, model_args.attn_implementation)
        kwargs["attn_implementation"] = model_args.attn_implementation
        half = training_args is None or training_args.fp16 or training_args.bf16
        if model_args.attn_implementation == "flash_attention_2" and not half:
            raise UserError("--attn_implementation flash_attention_2 runs in 16 bits only: add --bf16 (or --fp16)")
    if model_args.fused_gelu:
        use_fused_gelu(config)
    if training_args is not None:
        warning = precision_warning(config, training_args.fp16)
        if warning:
            logger.warning(warning)
    name = model_args.model_name_or_path
    dtype = weight_dtype(model_args)
    if dtype != "auto" or name:  # auto from scratch: float32, the default
        kwargs["dtype"] = dtype
    try:
        if name:
            path = Path(name)
            kwargs.update(config=config, **hub_kwargs(model_args))
            if path.exists():
                if not any((path / f).is_file() for f in WEIGHT_FILES):
                    raise UserError(
                        f"--model_name_or_path {name}: the folder holds no weights (expected {WEIGHT_FILES[0]} "
                        f"or {WEIGHT_FILES[2]}); point it at a folder written by run_clm.py or save_pretrained"
                    )
                model = _local_load(AutoModelForCausalLM, name, "--model_name_or_path", "model", **kwargs)
            else:
                model = _hub_load(AutoModelForCausalLM, name, "--model_name_or_path", "model", **kwargs)
        else:
            config.vocab_size = len(tokenizer)
            if model_args.trust_remote_code:  # a --config_name whose architecture is the model's own code
                kwargs["trust_remote_code"] = True
            model = AutoModelForCausalLM.from_config(config, **kwargs)
            from domainlm.guards import parameter_counts

            n, _ = parameter_counts(model)  # under ZeRO-3 the parameters are partitioned already: their full size
            logger.info("new %s model from a config: %.2fM parameters", config.model_type, n / 1e6)
    except (ValueError, ImportError) as err:
        if "attn_implementation" not in kwargs or "attention" not in str(err).lower():
            raise
        raise UserError(f"--attn_implementation {model_args.attn_implementation}: {first_line(err)}") from None
    if dtype == "auto" and training_args is not None:  # the checkpoint decided: said now that it is known
        check_training_dtype(model.dtype, training_args, f"--torch_dtype auto ({name} holds {model.dtype})")
    match_tokenizer(model, tokenizer, model_args.pad_vocab_to_multiple_of)
    name_causal_lm_loss(model)
    return model


def name_causal_lm_loss(model: PreTrainedModel) -> None:
    """Set ``model.loss_type = "ForCausalLM"`` where transformers left it None (GPT-2).

    Why this exists. transformers finds a model's loss in its class name, and ``GPT2LMHeadModel`` names
    none (``GPTNeoForCausalLM`` does). With ``loss_type`` None, the model still uses the causal-LM loss
    (after the warning "`loss_type=None` was set in the config but it is unrecognized"), but the Trainer,
    which reads ``loss_type`` to know whether the loss shifts labels, counts the tokens it divides a
    batch's summed loss by (``num_items_in_batch``) over the unshifted labels: one token too many per
    row whose first label is not ``-100``. Training and evaluation losses of records of n tokens then
    come out (n - 1) / n of their value, and the gradients shrink alike: 2% for 50-token records.
    """
    if getattr(model, "loss_type", "") is None:
        model.loss_type = "ForCausalLM"


def embedding_rows(model: PreTrainedModel) -> int:
    weight = model.get_input_embeddings().weight
    return getattr(weight, "ds_shape", weight.shape)[0]  # under ZeRO-3 .shape is the empty local shard


def match_tokenizer(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None
) -> None:
    """Resize the embeddings to the tokenizer (rounded up to ``pad_to_multiple_of`` rows) and record
    its special ids in the config. Rows are never removed."""
    rows = embedding_rows(model)
    target = max(rows, len(tokenizer))
    if pad_to_multiple_of:
        target = math.ceil(target / pad_to_multiple_of) * pad_to_multiple_of
    if target > rows:
        model.resize_token_embeddings(target)
        logger.info(
            "resized token embeddings from %d to %d rows (tokenizer: %d tokens%s)",
            rows,
            target,
            len(tokenizer),
            f"; ids {len(tokenizer)}-{target - 1} are padding, never generated" if target > len(tokenizer) else "",
        )
    for key in ("eos_token_id", "pad_token_id", "bos_token_id"):
        value = getattr(tokenizer, key)
        if value is not None:
            setattr(model.config, key, value)


def configure_generation(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Defaults that make ``pipeline('text-generation', model=dir)`` give a whole posting.

    Sampling (top-p 0.95, top-k 50) rather than greedy, which repeats itself on small models; stop at
    end-of-text; never run past the model's context (max_length counts prompt and output). The
    tokenizer's ``model_max_length`` is lowered to that context too, so that the saved folder's
    ``tokenizer(text, truncation=True)`` gives what the model can take (a tokenizer made for 1,024
    tokens, or one with no limit, beside a model of 256 positions would give more, and the model fails).
    """
    context = context_length(model.config)
    if tokenizer.model_max_length > context:
        tokenizer.model_max_length = context
    gen = model.generation_config
    gen.eos_token_id = tokenizer.eos_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    gen.bos_token_id = tokenizer.bos_token_id
    gen.do_sample = True
    gen.top_k = 50
    gen.top_p = 0.95
    gen.max_length = context
    gen.max_new_tokens = None
    # Embedding rows beyond the tokenizer (--pad_vocab_to_multiple_of, or a model saved that way) have
    # no text: a sampled one would decode to nothing. Nor has <|pad|>, which fills batches and is never
    # a label. Their logits are set to -inf at every step (generate.py keeps this too).
    unused = set(range(len(tokenizer), embedding_rows(model)))
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        unused.add(tokenizer.pad_token_id)
    gen.suppress_tokens = sorted(unused | set(gen.suppress_tokens or ())) or None
