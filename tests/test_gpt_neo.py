"""A tiny GPT-Neo trains, saves and loads in ``pipeline`` under both DeepSpeed configs (real launcher)."""

import json
import math
from pathlib import Path

import pytest
from conftest import DEEPSPEED, ROOT, free_port, run_command
from test_modeling import NEO, save_tiny_neo

pytestmark = pytest.mark.slow


def train(out: Path, records: Path, config: str, *flags: str) -> dict:
    run_command(
        [DEEPSPEED, "--num_gpus=1", "--master_port", str(free_port()), str(ROOT / "run_clm.py"), "--deepspeed", str(ROOT / config),
         "--train_file", str(records / "train.csv"), "--validation_file", str(records / "validation.csv"),
         "--do_train", "--do_eval", "--output_dir", str(out), "--num_train_epochs", "1",
         "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--save_strategy", "no",
         "--report_to", "none", *flags],
        cwd=out.parent,
    )  # fmt: skip
    results = json.loads((out / "all_results.json").read_text())
    assert math.isfinite(results["train_loss"]) and math.isfinite(results["eval_perplexity"])
    return results


def generates(out: Path) -> None:
    from transformers import pipeline

    from domainlm.template import format_prompt

    generator = pipeline("text-generation", model=str(out))
    assert generator.model.config.model_type == "gpt_neo"
    prompt = format_prompt("Data Scientist", ["python", "sql"])
    assert generator(prompt, max_new_tokens=10)[0]["generated_text"].startswith(prompt)


def test_gpt_neo_from_a_config_with_zero2(tmp_path, bpe_tokenizer_dir, records_dir):
    from transformers import AutoConfig

    out = tmp_path / "out"
    train(out, records_dir, "ds_config.json", "--model_type", "gpt_neo", "--config_overrides", NEO,
          "--tokenizer_name", str(bpe_tokenizer_dir), "--gradient_checkpointing")  # fmt: skip
    config = AutoConfig.from_pretrained(out)
    assert (config.num_layers, config.hidden_size, config.attention_layers) == (2, 32, ["global", "local"])
    generates(out)


def test_gpt_neo_folder_with_zero3_padded_vocab_and_fused_gelu(tmp_path, bpe_tokenizer_dir, records_dir):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    start = save_tiny_neo(tmp_path / "neo", bpe_tokenizer_dir)
    out = tmp_path / "out"
    train(out, records_dir, "ds_config_zero3.json", "--model_name_or_path", str(start),
          "--pad_vocab_to_multiple_of", "64", "--fused_gelu", "--attn_implementation", "eager")  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.vocab_size == 512 and model.config.activation_function == "gelu_pytorch_tanh"
    assert model.generation_config.suppress_tokens == [1, *range(501, 512)]  # <|pad|> and the padded rows
    # the full weights, gathered from the ZeRO-3 partitions, not empty placeholders
    n = sum({p.data_ptr(): p.numel() for p in model.parameters()}.values())
    assert n * 4 <= (out / "model.safetensors").stat().st_size < n * 4 * 1.6
    before, after = load_file(start / "model.safetensors"), load_file(out / "model.safetensors")
    blocks = [k for k in before if ".h." in k and k.endswith(".weight")]
    assert blocks and all(not (before[k] == after[k]).all() for k in blocks)
    generates(out)
