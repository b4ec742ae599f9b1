"""Memory and speed switches of the model (in-process, tiny models): fused GELU, attention kernels,
padded vocabularies and what generation does with them, gradient checkpointing, GPT-Neo configs."""

import json
import logging
import math
from types import SimpleNamespace

import pytest
import torch
from conftest import write_text_csv

from domainlm.args import ModelArguments
from domainlm.errors import UserError
from domainlm.modeling import configure_generation, load_config, load_model, load_tokenizer, precision_warning
from domainlm.template import format_prompt, format_record
from domainlm.train import main

ROW = format_record("Baker", ["bread", "oven"], "Bake bread daily.\nClean the oven.")
NEO = "num_layers=2,hidden_size=32,num_heads=2,max_position_embeddings=256,window_size=16"


def save_tiny_neo(out, tokenizer_dir):
    """A 2-layer GPT-Neo (32 wide) with the BPE tokenizer, saved as a local 'pretrained' folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = load_config(ModelArguments(model_type="gpt_neo", config_overrides=NEO))
    config.vocab_size = len(tok)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_neo_dir(tmp_path_factory, bpe_tokenizer_dir):
    return save_tiny_neo(tmp_path_factory.mktemp("tiny-neo"), bpe_tokenizer_dir)


def load(folder, **flags):
    args = ModelArguments(model_name_or_path=str(folder), **flags)
    tokenizer = load_tokenizer(args)
    return load_model(args, tokenizer).eval(), tokenizer


def logits(model, tokenizer):
    ids = tokenizer(ROW, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits


# --fused_gelu


@pytest.mark.parametrize("folder", ["tiny_model_dir", "tiny_neo_dir"])
def test_fused_gelu_gives_the_same_logits(folder, request):
    from transformers.activations import GELUTanh, NewGELUActivation

    path = request.getfixturevalue(folder)
    plain, tok = load(path)
    fused, _ = load(path, fused_gelu=True)
    assert fused.config.activation_function == "gelu_pytorch_tanh"
    assert any(isinstance(m, GELUTanh) for m in fused.modules())
    assert not any(isinstance(m, NewGELUActivation) for m in fused.modules())
    assert any(isinstance(m, NewGELUActivation) for m in plain.modules())
    diff = (logits(plain, tok) - logits(fused, tok)).abs().max().item()
    assert diff <= 1e-6, diff


def test_fused_gelu_differs_by_a_few_millionths_on_a_gpt2_sized_model():
    # README's figure: a random 12-layer, 768-wide GPT-2 (small vocabulary) in fp32: about 3e-6 measured
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=128, vocab_size=1024)
    plain = GPT2LMHeadModel(config).eval()
    fused = GPT2LMHeadModel(GPT2Config(**{**config.to_dict(), "activation_function": "gelu_pytorch_tanh"})).eval()
    fused.load_state_dict(plain.state_dict())
    ids = torch.randint(0, 1024, (2, 128), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (plain(ids).logits - fused(ids).logits).abs().max().item()
    assert 0 < diff <= 1e-5, diff


# --attn_implementation


def test_gpt2_eager_and_sdpa_agree(tiny_model_dir):
    eager, tok = load(tiny_model_dir, attn_implementation="eager")
    sdpa, _ = load(tiny_model_dir, attn_implementation="sdpa")
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    torch.testing.assert_close(logits(eager, tok), logits(sdpa, tok), atol=1e-5, rtol=1e-5)


def test_both_models_name_the_causal_lm_loss(tiny_model_dir, tiny_neo_dir):
    # transformers leaves GPT-2's None; the Trainer then divides losses by unshifted label counts
    # (the records case of tests/test_eval_loss.py shows what that costs)
    gpt2, _ = load(tiny_model_dir)
    neo, _ = load(tiny_neo_dir)
    assert (gpt2.loss_type, neo.loss_type) == ("ForCausalLM", "ForCausalLM")


def test_gpt_neo_has_no_sdpa(tiny_neo_dir):
    with pytest.raises(UserError, match="gpt_neo supports only eager and flash_attention_2"):
        ModelArguments(model_type="gpt_neo", tokenizer_name="x", attn_implementation="sdpa")
    with pytest.raises(UserError, match="gpt_neo supports only eager and flash_attention_2"):
        load(tiny_neo_dir, attn_implementation="sdpa")
    model, _ = load(tiny_neo_dir, attn_implementation="eager")
    assert model.config._attn_implementation == "eager"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_flash_attention_without_a_gpu_is_one_clear_error(tiny_model_dir):
    with pytest.raises(UserError, match="flash_attention_2 needs a CUDA GPU"):
        load(tiny_model_dir, attn_implementation="flash_attention_2")


def test_flash_attention_needs_16_bit_training(tiny_model_dir, monkeypatch):
    import importlib.util

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    args = ModelArguments(model_name_or_path=str(tiny_model_dir), attn_implementation="flash_attention_2")
    with pytest.raises(UserError, match="flash_attention_2 runs in 16 bits only: add --bf16"):
        load_model(args, load_tokenizer(args), SimpleNamespace(fp16=False, bf16=False))


# --pad_vocab_to_multiple_of


def test_padded_vocab_is_never_generated(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = load(tiny_model_dir, pad_vocab_to_multiple_of=64)
    assert len(tok) == 501 and model.config.vocab_size == 512
    assert model.get_input_embeddings().weight.shape[0] == model.get_output_embeddings().weight.shape[0] == 512
    configure_generation(model, tok)
    assert model.generation_config.suppress_tokens == [1, *range(501, 512)]  # <|pad|> (id 1) and the padded rows
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)

    saved = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert json.loads((tmp_path / "generation_config.json").read_text())["suppress_tokens"] == [1, *range(501, 512)]
    # make the padded rows the most likely continuation by far, as an untrained row could be
    saved.get_output_embeddings().register_forward_hook(lambda m, i, out: out + 1e4 * (torch.arange(512) >= 501))
    prompt = tok(format_prompt("Baker", ["bread"]), return_tensors="pt")
    n = prompt["input_ids"].shape[1]
    torch.manual_seed(0)
    new = saved.generate(**prompt, max_new_tokens=8, top_k=0)[0, n:]
    assert len(new) == 8 and int(new.max()) < 501
    # the control: without the suppression the padded ids win every step
    torch.manual_seed(0)
    new = saved.generate(**prompt, max_new_tokens=8, top_k=0, suppress_tokens=[])[0, n:]
    assert int(new.min()) >= 501


def test_padding_keeps_rows_and_rounds_up(tiny_model_dir):
    model, tok = load(tiny_model_dir, pad_vocab_to_multiple_of=8)
    assert model.config.vocab_size == 504  # 501 tokens -> 63 x 8
    model, tok = load(tiny_model_dir)
    assert model.config.vocab_size == 501
    configure_generation(model, tok)
    assert model.generation_config.suppress_tokens == [1]  # no padded rows, but <|pad|> all the same
    with pytest.raises(UserError, match="--pad_vocab_to_multiple_of must be 1 or more"):
        ModelArguments(model_name_or_path="x", pad_vocab_to_multiple_of=0)


def test_training_with_padded_vocab_saves_a_folder_that_generates(tmp_path, tiny_model_dir):
    from transformers import AutoConfig, pipeline

    write_text_csv(tmp_path / "train.csv", [{"text": ROW}] * 8)
    main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(tmp_path / "train.csv"), "--do_train",
          "--pad_vocab_to_multiple_of", "64", "--fused_gelu", "--num_train_epochs", "1",
          "--per_device_train_batch_size", "4", "--output_dir", str(tmp_path / "out"), "--report_to", "none",
          "--save_strategy", "no", "--disable_tqdm", "true"])  # fmt: skip
    out = tmp_path / "out"
    config = AutoConfig.from_pretrained(out)
    assert config.vocab_size == 512 and config.activation_function == "gelu_pytorch_tanh"
    generator = pipeline("text-generation", model=str(out))
    assert len(generator.tokenizer) == 501
    assert generator.model.generation_config.suppress_tokens == [1, *range(501, 512)]
    prompt = format_prompt("Baker", ["bread"])
    assert generator(prompt, max_new_tokens=5)[0]["generated_text"].startswith(prompt)


# --gradient_checkpointing (a TrainingArguments flag)


def test_gradient_checkpointing_trains_to_the_same_weights(tmp_path, tiny_model_dir, monkeypatch, caplog, recwarn):
    """Recomputing activations in the backward pass changes memory, not results (dropout included:
    the checkpoint replays the RNG), and the cache stays off without the use_cache warning. The guides'
    --gradient_checkpointing is transformers 5's --activation_checkpointing, without its deprecation warning."""
    import transformers.modeling_utils as mu
    from safetensors.torch import load_file

    calls = []
    real = mu.checkpoint
    monkeypatch.setattr(mu, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    write_text_csv(tmp_path / "train.csv", [{"text": ROW}] * 8)
    weights = {}
    for name, extra in (("plain", []), ("checkpointed", ["--gradient_checkpointing"])):
        main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(tmp_path / "train.csv"), "--do_train",
              "--num_train_epochs", "2", "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--seed", "3",
              "--output_dir", str(tmp_path / name), "--report_to", "none", "--save_strategy", "no",
              "--disable_tqdm", "true", *extra])  # fmt: skip
        weights[name] = load_file(tmp_path / name / "model.safetensors")
        if name == "plain":
            assert not calls
    assert len(calls) == 2 * 4  # 2 blocks x (2 epochs x 2 steps)
    assert "use_cache=True` is incompatible" not in caplog.text
    assert not [w for w in recwarn if "gradient_checkpointing" in str(w.message)]
    for key, value in weights["plain"].items():
        torch.testing.assert_close(weights["checkpointed"][key], value, atol=1e-6, rtol=0)
    start = load_file(tiny_model_dir / "model.safetensors")
    assert not torch.equal(
        weights["plain"]["transformer.h.0.mlp.c_fc.weight"], start["transformer.h.0.mlp.c_fc.weight"]
    )


# GPT-Neo specifics


def test_gpt_neo_from_overrides_gets_a_matching_attention_pattern(tmp_path):
    from transformers import AutoConfig

    config = load_config(
        ModelArguments(model_type="gpt_neo", config_overrides=NEO.replace("num_layers=2", "num_layers=3"))
    )
    assert config.attention_layers == ["global", "local", "global"]
    config.save_pretrained(tmp_path)  # refused before: 24-layer pattern for 3 layers
    assert AutoConfig.from_pretrained(tmp_path).attention_layers == ["global", "local", "global"]


def test_fp16_with_gpt_neo_warns(tiny_neo_dir, tiny_model_dir, caplog):
    neo = load_config(ModelArguments(model_name_or_path=str(tiny_neo_dir)))
    gpt2 = load_config(ModelArguments(model_name_or_path=str(tiny_model_dir)))
    assert "prefer --bf16" in precision_warning(neo, fp16=True)
    assert precision_warning(neo, fp16=False) is None and precision_warning(gpt2, fp16=True) is None
    args = ModelArguments(model_name_or_path=str(tiny_neo_dir))
    with caplog.at_level(logging.WARNING, logger="domainlm.modeling"):
        load_model(args, load_tokenizer(args), SimpleNamespace(fp16=True))
    assert "--fp16 with GPT-Neo" in caplog.text


# --torch_compile (a TrainingArguments flag)


@pytest.mark.slow
def test_torch_compile_trains_and_saves_on_cpu(tmp_path, tiny_model_dir):
    """Inductor compiles for the CPU here (about a minute per new batch shape on 2 cores): fixed-size
    blocks give one shape. The saved weights carry no ``_orig_mod.`` prefix and load in pipeline."""
    from safetensors.torch import load_file
    from transformers import pipeline

    write_text_csv(tmp_path / "train.csv", [{"text": ROW}] * 16)
    results = main(["--model_name_or_path", str(tiny_model_dir), "--train_file", str(tmp_path / "train.csv"),
                    "--do_train", "--torch_compile", "--sequence_mode", "concat", "--block_size", "16",
                    "--max_train_samples", "8", "--per_device_train_batch_size", "4", "--num_train_epochs", "1",
                    "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--save_strategy", "no",
                    "--disable_tqdm", "true"])  # fmt: skip
    assert results["train_samples"] == 8 and math.isfinite(results["train_loss"])
    keys = load_file(tmp_path / "out" / "model.safetensors").keys()
    assert keys and not any("_orig_mod" in k for k in keys)
    [out] = pipeline("text-generation", model=str(tmp_path / "out"))("Baker", max_new_tokens=3)
    assert out["generated_text"].startswith("Baker") and len(out["generated_text"]) > len("Baker")


def test_a_tokenizer_folder_without_a_tokenizer_is_one_line(tmp_path, tiny_model_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {
        empty: f"--tokenizer_name {empty}: this folder holds no tokenizer (none of tokenizer.json, "
        "tokenizer_config.json, vocab.json, vocab.txt, tokenizer.model); make one with create_tokenizer.py or pass "
        "--tokenizer_name",
        tiny_model_dir / "config.json": f"--tokenizer_name {tiny_model_dir / 'config.json'} is a file; give the "
        f"folder that holds it ({tiny_model_dir})",
    }
    for name, message in cases.items():
        with pytest.raises(UserError) as err:
            load_tokenizer(ModelArguments(model_type="gpt2", tokenizer_name=str(name)))
        assert str(err.value) == message
    assert len(load_tokenizer(ModelArguments(model_type="gpt2", tokenizer_name=str(tiny_model_dir)))) == 501


def test_a_tokenizer_file_that_is_json_but_no_tokenizer_is_one_line(tmp_path, tiny_model_dir):
    """tokenizers raises a bare Exception for it ("data did not match any variant"): no traceback either."""
    import shutil

    from domainlm.generation import load_model_dir

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "NoSuchPreTokenizer"}
    (folder / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(UserError) as err:
        load_tokenizer(ModelArguments(model_name_or_path=str(folder)))
    assert str(err.value).startswith(
        f"--model_name_or_path {folder}: its tokenizer cannot be loaded (Exception: data did not match any variant "
    )
    assert str(err.value).endswith("damaged or incomplete: copy the folder again, or save it again")
    with pytest.raises(UserError) as err:
        load_model_dir(folder)
    assert str(err.value).startswith(f"--model_dir {folder}: its tokenizer cannot be loaded (Exception: data did not")
    assert str(err.value).endswith("damaged or incomplete: copy the folder again, or train again")


def test_an_error_that_is_no_damage_is_not_called_damage(tmp_path, tiny_model_dir, monkeypatch):
    """A bug or a kernel that cannot run is not a damaged file: it reaches the caller as it was raised."""
    from transformers import AutoTokenizer

    from domainlm.modeling import _local_load

    def broken(*args, **kwargs):
        raise TypeError("unexpected keyword")

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", broken)
    with pytest.raises(TypeError, match=r"^unexpected keyword$"):
        _local_load(AutoTokenizer, str(tiny_model_dir), "--model_dir", "tokenizer")


def test_a_new_model_logs_its_full_size_when_its_parameters_are_partitioned(tiny_model_dir, monkeypatch, caplog):
    """Under ZeRO-3, from_config returns parameters already split across ranks (each holds ds_numel, the full
    size, and a shard of it): the log counted the shards, "0.00M parameters"."""
    from transformers import AutoModelForCausalLM

    real = AutoModelForCausalLM.from_config

    def partitioned(config, **kwargs):
        model = real(config, **kwargs)
        for p in model.parameters():
            p.ds_numel = 4 * p.numel()  # as if this rank held a quarter of each (shapes kept for the resize)
        return model

    monkeypatch.setattr(AutoModelForCausalLM, "from_config", partitioned)
    args = ModelArguments(
        model_type="gpt2", tokenizer_name=str(tiny_model_dir), config_overrides="n_layer=2,n_embd=32,n_head=2"
    )
    tokenizer = load_tokenizer(args)
    with caplog.at_level(logging.INFO, logger="domainlm.modeling"):
        model = load_model(args, tokenizer)
    n = sum(p.ds_numel for p in model.parameters())
    assert n == 4 * sum(p.numel() for p in model.parameters()) > 10_000
    assert f"new gpt2 model from a config: {n / 1e6:.2f}M parameters" in caplog.text


# --torch_dtype, --token, --trust_remote_code


@pytest.fixture(scope="module")
def bf16_model_dir(tmp_path_factory, tiny_model_dir):
    """The tiny GPT-2 saved in bfloat16, as a --bf16 run under DeepSpeed saves its model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-bf16")
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def test_weights_load_in_float32_unless_torch_dtype_says_otherwise(bf16_model_dir, tiny_model_dir):
    from safetensors.torch import load_file

    saved = load_file(bf16_model_dir / "model.safetensors")["transformer.wte.weight"]
    model, _ = load(bf16_model_dir)
    assert model.dtype == torch.float32  # transformers 5 alone would give bfloat16 (its default is auto)
    assert torch.equal(model.transformer.wte.weight[: len(saved)], saved.float())
    assert load(bf16_model_dir, torch_dtype="auto")[0].dtype == torch.bfloat16
    assert load(tiny_model_dir, torch_dtype="bfloat16")[0].dtype == torch.bfloat16
    scratch = ModelArguments(model_type="gpt2", config_overrides="n_layer=1,n_embd=16,n_head=2", torch_dtype="auto")
    assert load_model(scratch, load_tokenizer(ModelArguments(model_name_or_path=str(tiny_model_dir)))).dtype == (
        torch.float32
    )


def train_one_step(tmp_path, folder, *flags):
    """One optimizer step at a rate far below bfloat16's precision; the saved weights and the start's."""
    from safetensors.torch import load_file

    write_text_csv(tmp_path / "train.csv", [{"text": ROW}] * 4)
    out = tmp_path / "out"
    main(["--model_name_or_path", str(folder), "--train_file", str(tmp_path / "train.csv"), "--do_train",
          "--max_steps", "1", "--learning_rate", "1e-6", "--warmup_steps", "0", "--per_device_train_batch_size", "4",
          "--output_dir", str(out), "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true", *flags])  # fmt: skip
    return load_file(out / "model.safetensors"), load_file(folder / "model.safetensors")


def test_a_bf16_checkpoint_fine_tuned_again_keeps_its_small_updates(tmp_path, bf16_model_dir, caplog):
    """Started from bfloat16 weights, a step of 1e-6 moves float32 weights; pure bfloat16 (--torch_dtype
    bfloat16, or auto here) rounds nearly all of it away, and the log says so."""
    name = "transformer.h.0.mlp.c_fc.weight"
    trained, start = train_one_step(tmp_path / "fp32", bf16_model_dir)
    assert trained[name].dtype == torch.float32
    assert (trained[name] != start[name].float()).float().mean() > 0.9
    with caplog.at_level("WARNING", logger="domainlm.modeling"):
        trained, start = train_one_step(tmp_path / "bf16", bf16_model_dir, "--torch_dtype", "bfloat16")
    assert trained[name].dtype == torch.bfloat16
    assert (trained[name] != start[name]).float().mean() < 0.05
    assert "--torch_dtype bfloat16: pure bfloat16 training" in caplog.text
    card = (tmp_path / "bf16" / "out" / "README.md").read_text()
    assert "| precision | pure bfloat16 (the weights themselves, no float32 copies) |" in card
    assert "| precision | fp32 |" in (tmp_path / "fp32" / "out" / "README.md").read_text()


def test_a_float16_checkpoint_with_torch_dtype_auto_is_refused_before_training(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "fp16"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float16).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    with pytest.raises(UserError, match=rf"^--torch_dtype auto \({folder} holds torch.float16\): float16 weights"):
        train_one_step(tmp_path, folder, "--torch_dtype", "auto")
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_hub_loads_take_the_token_and_remote_code_flags(monkeypatch, tiny_model_dir):
    from transformers import AutoConfig

    seen = []
    config = AutoConfig.from_pretrained(tiny_model_dir)
    monkeypatch.setattr(AutoConfig, "from_pretrained", lambda name, **kw: seen.append((name, kw)) or config)
    args = ModelArguments(model_name_or_path="org/private-gpt2", token="hf_t", trust_remote_code=True)
    assert load_config(args) is config
    assert seen == [
        (
            "org/private-gpt2",
            {
                "local_files_only": False,
                "cache_dir": None,
                "revision": "main",
                "token": "hf_t",
                "trust_remote_code": True,
            },
        )
    ]


def test_trust_remote_code_reaches_a_model_built_from_a_config(monkeypatch, tiny_model_dir):
    """From scratch with a --config_name whose architecture is the model's own code, as upstream run_clm."""
    from transformers import AutoModelForCausalLM

    seen = []
    real = AutoModelForCausalLM.from_config
    monkeypatch.setattr(AutoModelForCausalLM, "from_config", lambda config, **kw: seen.append(kw) or real(config))
    tokenizer = load_tokenizer(ModelArguments(model_name_or_path=str(tiny_model_dir)))
    load_model(ModelArguments(model_type="gpt2", config_overrides="n_layer=1,n_embd=16,n_head=2"), tokenizer)
    load_model(ModelArguments(config_name=str(tiny_model_dir), trust_remote_code=True), tokenizer)
    assert [kw.get("trust_remote_code") for kw in seen] == [None, True]
