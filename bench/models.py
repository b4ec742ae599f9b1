"""Models by name, randomly initialised from a config (no weights can be downloaded), and the memory switches.

Named GPT-2 and GPT-Neo sizes keep their real shapes, vocabulary included (50,257 tokens plus the
``<|pad|>`` and ``<|SEP|>`` the project adds), so the output head costs what it costs in a real
fine-tuning; ids from a smaller benchmark tokenizer simply use the first rows. ``tiny`` is the
project's offline default model (``launch.sh``: 4 layers, 256 wide) with the tokenizer's own vocabulary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

GPT2_VOCAB = 50257 + 2  # GPT-2's tokenizer plus <|pad|> and <|SEP|>, as domainlm.tokenizer adds them

# name -> (model type, shape); parameter counts are for the real vocabulary
SIZES: dict[str, tuple[str, dict[str, int]]] = {
    "tiny": ("gpt2", {"n_layer": 4, "n_embd": 256, "n_head": 4}),  # launch.sh's default, ~5M with 8k vocab
    "gpt2": ("gpt2", {"n_layer": 12, "n_embd": 768, "n_head": 12}),  # 124M
    "gpt2-medium": ("gpt2", {"n_layer": 24, "n_embd": 1024, "n_head": 16}),  # 355M
    "gpt2-large": ("gpt2", {"n_layer": 36, "n_embd": 1280, "n_head": 20}),  # 774M
    "gpt2-xl": ("gpt2", {"n_layer": 48, "n_embd": 1600, "n_head": 25}),  # 1.56B
    "gpt-neo-125m": ("gpt_neo", {"num_layers": 12, "hidden_size": 768, "num_heads": 12}),
    "gpt-neo-1.3b": ("gpt_neo", {"num_layers": 24, "hidden_size": 2048, "num_heads": 16}),
    "gpt-neo-2.7b": ("gpt_neo", {"num_layers": 32, "hidden_size": 2560, "num_heads": 20}),
}


def canonical_name(name: str) -> str:
    """``EleutherAI/gpt-neo-1.3B`` -> ``gpt-neo-1.3b``, ``openai-community/gpt2-xl`` -> ``gpt2-xl``."""
    from domainlm.errors import UserError

    key = name.lower().split("/")[-1]
    if key not in SIZES:
        raise UserError(f"--model {name}: unknown; choose from {', '.join(SIZES)}")
    return key


# the position table of each model type's named sizes (launch.sh's tiny model included)
POSITIONS = {"gpt2": ("n_positions", 1024), "gpt_neo": ("max_position_embeddings", 2048)}


def model_config(
    name: str,
    vocab_size: int,
    block_size: int,
    overrides: str | None = None,
    activation_function: str | None = None,
    widen: bool = True,
    length_flag: str = "--block_size",
) -> PretrainedConfig:
    """The config of a named size. ``vocab_size``: the tokenizer's length (``tiny``) or at least it (named sizes).

    ``overrides`` as ``run_clm.py --config_overrides`` (``n_layer=2,n_embd=32``); ``activation_function``
    replaces the model's (``gelu_pytorch_tanh`` is the fused GELU). A ``block_size`` over the size's
    position table (``POSITIONS``) widens the table when ``widen`` (and the table was not set in
    ``overrides``); otherwise it is a UserError that names ``length_flag``.
    """
    from transformers import GPT2Config, GPTNeoConfig

    from domainlm.errors import UserError
    from domainlm.modeling import match_neo_layers, neo_attention_types

    key = canonical_name(name)
    model_type, shape = SIZES[key]
    table, positions = POSITIONS[model_type]
    vocab = vocab_size if key == "tiny" else max(vocab_size, GPT2_VOCAB)
    if model_type == "gpt2":
        config: PretrainedConfig = GPT2Config(
            **shape, vocab_size=vocab, n_positions=positions, bos_token_id=0, eos_token_id=0
        )
        if key == "tiny":  # as launch.sh builds it
            config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0
    else:
        config = GPTNeoConfig(  # the layer pattern must list num_layers layers from the start (transformers 5)
            **shape,
            attention_types=neo_attention_types(shape["num_layers"]),
            vocab_size=vocab,
            max_position_embeddings=positions,
            bos_token_id=0,
            eos_token_id=0,
        )
    if overrides:
        try:
            config.update_from_string(overrides)
        except ValueError as err:
            raise UserError(
                f"--config_overrides {overrides}: {err}; give key=value pairs, comma-separated, of the "
                f"{type(config).__name__} keys (e.g. {', '.join(shape)})"
            ) from None
    if block_size > getattr(config, table):
        explicit = table in dict(part.split("=", 1) for part in (overrides or "").split(",") if "=" in part)
        if not widen or explicit:
            raise UserError(
                f"{length_flag} {block_size}: over the {getattr(config, table)} positions of --model {name}"
                + (f" with --config_overrides {overrides}" if explicit else "")
                + f"; lower it, or widen the table with --config_overrides {table}={block_size}"
            )
        setattr(config, table, block_size)
    if model_type == "gpt_neo":
        match_neo_layers(config)
    if activation_function:
        config.activation_function = activation_function
    config.use_cache = False  # with a cache, packed records would attend to each other
    return config


def widened_positions(name: str, config: PretrainedConfig) -> int | None:
    """The named size's own position table when ``config``'s is larger (``model_config`` widened it), else None."""
    table, positions = POSITIONS[SIZES[canonical_name(name)][0]]
    return positions if getattr(config, table) > positions else None


def default_attention(config: PretrainedConfig) -> str:
    """GPT-2: ``sdpa`` (the transformers default); GPT-Neo has no sdpa path, so ``eager``."""
    return "eager" if config.model_type == "gpt_neo" else "sdpa"


def build_model(
    config: PretrainedConfig, attn_implementation: str | None = None, seed: int = 0, packed_rows: bool = False
) -> PreTrainedModel:
    """A randomly initialised model; ``packed_rows``: attention set up as training sets it for packed rows
    (``domainlm.packed_attention``: GPT-2 on sdpa runs SDPA per record; other batches take plain sdpa)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    attn = attn_implementation or default_attention(config)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn)
    if packed_rows:
        from domainlm.packed_attention import use_packed_attention

        use_packed_attention(model)
    return model


def enable_checkpointing(model: PreTrainedModel) -> None:
    """Activation (gradient) checkpointing through transformers' own switch (renamed in 5.x)."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable()
    else:
        model.gradient_checkpointing_enable()


def pad_embedding_rows(model: PreTrainedModel, vocab_size: int, multiple: int = 64) -> int:
    """Embedding (and tied output) rows rounded up to a multiple; returns the new row count."""
    model.resize_token_embeddings(vocab_size, pad_to_multiple_of=multiple)
    return int(model.get_input_embeddings().weight.shape[0])


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
