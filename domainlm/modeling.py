"""Loading or building the model and tokenizer, and making the saved folder generate well.

A local folder is checked before loading, so that a folder without weights or a tokenizer gets one
line saying what is missing. A name that is not a local folder goes to the model hub (``gpt2-xl``
works for users who have it); offline, the error says which folder to pass instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domainlm.errors import UserError
from domainlm.tokenizer import ensure_special_tokens

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

    from domainlm.args import ModelArguments

logger = logging.getLogger(__name__)

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")


def _hub_load(loader: Any, name: str, flag: str, what: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(name)`` for a hub name, with a one-line error when it cannot be had."""
    try:
        return loader.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{flag} {name}: not a local folder, and the {what} could not be loaded from the model hub "
            f"({reason[:200]}); pass a local folder that holds it"
        ) from None


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
    kwargs = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision}
    path = Path(name)
    if path.exists():
        if not path.is_dir() or not any((path / f).is_file() for f in TOKENIZER_FILES):
            raise UserError(
                f"{flag} {name}: no tokenizer there (expected one of {', '.join(TOKENIZER_FILES)}); "
                "make one with create_tokenizer.py or pass --tokenizer_name"
            )
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    else:
        tokenizer = _hub_load(AutoTokenizer, name, flag, "tokenizer", **kwargs)
    ensure_special_tokens(tokenizer)
    return tokenizer


def load_config(model_args: ModelArguments) -> PretrainedConfig:
    from transformers import AutoConfig

    kwargs = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision}
    name = model_args.config_name or model_args.model_name_or_path
    if name:
        flag = "--config_name" if model_args.config_name else "--model_name_or_path"
        path = Path(name)
        if path.exists():
            if not (path / "config.json").is_file():
                raise UserError(f"{flag} {name}: no config.json in that folder; is it a model folder?")
            return AutoConfig.from_pretrained(name, **kwargs)
        return _hub_load(AutoConfig, name, flag, "config", **kwargs)
    config = AutoConfig.for_model(model_args.model_type)
    if model_args.config_overrides:
        try:
            config.update_from_string(model_args.config_overrides)
        except ValueError as err:
            raise UserError(f"--config_overrides {model_args.config_overrides!r}: {err}") from None
    return config


def load_model(model_args: ModelArguments, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The pretrained model, or a new one from a config; embeddings resized to the tokenizer."""
    from transformers import AutoModelForCausalLM

    config = load_config(model_args)
    name = model_args.model_name_or_path
    if name:
        path = Path(name)
        kwargs = {"config": config, "cache_dir": model_args.cache_dir, "revision": model_args.model_revision}
        if path.exists():
            if not any((path / f).is_file() for f in WEIGHT_FILES):
                raise UserError(
                    f"--model_name_or_path {name}: the folder holds no weights (expected {WEIGHT_FILES[0]} "
                    f"or {WEIGHT_FILES[2]}); point it at a folder written by run_clm.py or save_pretrained"
                )
            model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
        else:
            model = _hub_load(AutoModelForCausalLM, name, "--model_name_or_path", "model", **kwargs)
    else:
        config.vocab_size = len(tokenizer)
        model = AutoModelForCausalLM.from_config(config)
        n = sum(p.numel() for p in model.parameters())
        logger.info("new %s model from a config: %.2fM parameters", config.model_type, n / 1e6)
    match_tokenizer(model, tokenizer)
    return model


def match_tokenizer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Resize the embeddings to the tokenizer and record its special ids in the config."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer))
        logger.info("resized token embeddings from %d to %d rows", rows, len(tokenizer))
    for key in ("eos_token_id", "pad_token_id", "bos_token_id"):
        value = getattr(tokenizer, key)
        if value is not None:
            setattr(model.config, key, value)


def configure_generation(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Defaults that make ``pipeline('text-generation', model=dir)`` give a whole posting.

    Sampling (top-p 0.95, top-k 50) rather than greedy, which repeats itself on small models; stop at
    end-of-text; never run past the model's context (max_length counts prompt and output).
    """
    gen = model.generation_config
    gen.eos_token_id = tokenizer.eos_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    gen.bos_token_id = tokenizer.bos_token_id
    gen.do_sample = True
    gen.top_k = 50
    gen.top_p = 0.95
    gen.max_length = context_length(model.config)
    gen.max_new_tokens = None
