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


def model_config(
    name: str,
    vocab_size: int,
    block_size: int,
    overrides: str | None = None,
    activation_function: str | None = None,
) -> PretrainedConfig:
    """The config of a named size. ``vocab_size``: the tokenizer's length (``tiny``) or at least it (named sizes).

    ``overrides`` as ``run_clm.py --config_overrides`` (``n_layer=2,n_embd=32``); ``activation_function``
    replaces the model's (``gelu_pytorch_tanh`` is the fused GELU).
    """
    from transformers import GPT2Config, GPTNeoConfig

    key = canonical_name(name)
    model_type, shape = SIZES[key]
    vocab = vocab_size if key == "tiny" else max(vocab_size, GPT2_VOCAB)
    if model_type == "gpt2":
        config: PretrainedConfig = GPT2Config(
            **shape, vocab_size=vocab, n_positions=max(1024, block_size), bos_token_id=0, eos_token_id=0
        )
        if key == "tiny":  # as launch.sh builds it
            config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0
    else:
        config = GPTNeoConfig(
            **shape, vocab_size=vocab, max_position_embeddings=max(2048, block_size), bos_token_id=0, eos_token_id=0
        )
    if overrides:
        config.update_from_string(overrides)
    if model_type == "gpt_neo":
        _neo_layer_pattern(config)
    if activation_function:
        config.activation_function = activation_function
    config.use_cache = False  # with a cache, packed records would attend to each other
    return config


def _neo_layer_pattern(config: PretrainedConfig) -> None:
    """GPT-Neo alternates global and local attention; the pattern must list exactly ``num_layers`` layers."""
    n = config.num_layers
    config.attention_types = [[["global", "local"], n // 2]] + ([[["global"], 1]] if n % 2 else [])
    config.attention_layers = config.expand_attention_types_params(config.attention_types)


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
