"""What only a CUDA GPU can show: DeepSpeed in fp16 and bf16, and the training benchmark on the GPU.

Marked ``gpu``: skipped on a machine without CUDA (conftest.py). On the GPU machine, after
``bash ../shared/tools/device-wheels.sh``: ``python -m pytest -m gpu``.

fp16 runs start from a model whose embeddings lack the ``<|SEP|>`` row, as GPT-2 from the hub does:
run_clm adds the row, and DeepSpeed's dynamic loss scale (ds_config*.json: 2^16 to start, hysteresis
2, window 1000, floor 1) must carry training through the first steps with that new row.
"""

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import DEEPSPEED, ROOT, free_port, run_command, run_process, script_env

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def model_without_sep_row(tmp_path_factory, bpe_tokenizer_dir) -> Path:
    """A 4-layer GPT-2 whose embeddings stop one row short of its tokenizer: ``<|SEP|>`` (the last id) is new."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from domainlm.template import SEP_TOKEN

    tok = AutoTokenizer.from_pretrained(bpe_tokenizer_dir)
    assert tok.convert_tokens_to_ids(SEP_TOKEN) == len(tok) - 1
    torch.manual_seed(0)
    config = GPT2Config(n_layer=4, n_embd=128, n_head=4, n_positions=256, vocab_size=len(tok) - 1,
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    out = tmp_path_factory.mktemp("gpt2-without-sep")
    GPT2LMHeadModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def train(tmp_path: Path, model: Path, records: Path, config: Path, *flags: str):
    out = tmp_path / "out"
    cmd = [DEEPSPEED, "--num_gpus=1", "--master_port", str(free_port()), str(ROOT / "run_clm.py"),
           "--deepspeed", str(config), "--model_name_or_path", str(model), "--train_file", str(records / "train.csv"),
           "--validation_file", str(records / "validation.csv"), "--do_train", "--do_eval", "--output_dir", str(out),
           "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--logging_steps", "1",
           "--save_strategy", "no", "--report_to", "none", *flags]  # fmt: skip
    return out, cmd


@pytest.mark.parametrize("config", ["ds_config.json", "ds_config_zero3.json"])
def test_fp16_deepspeed_trains_through_new_token_rows(tmp_path, model_without_sep_row, records_dir, config):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, pipeline

    from domainlm.template import format_prompt

    out, cmd = train(tmp_path, model_without_sep_row, records_dir, ROOT / config, "--fp16", "--max_steps", "40")
    proc = run_command(cmd, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    rows = len(AutoTokenizer.from_pretrained(model_without_sep_row))
    assert f"resized token embeddings from {rows - 1} to {rows} rows" in log and "training in fp32 instead" not in log
    skipped = log.count("OVERFLOW!")
    assert skipped < 10, f"{skipped} of 40 steps skipped for overflow"
    results = json.loads((out / "all_results.json").read_text())
    assert math.isfinite(results["train_loss"]) and math.isfinite(results["eval_loss"])
    weights = load_file(out / "model.safetensors")
    wte = weights["transformer.wte.weight"]
    assert wte.shape[0] == rows and bool(torch.isfinite(wte.float()).all())
    generator = pipeline("text-generation", model=str(out), device=0)
    prompt = format_prompt("Data Scientist", ["python", "sql"])
    assert generator(prompt, max_new_tokens=10)[0]["generated_text"].startswith(prompt)


def test_fp16_overflow_in_a_row_stops_with_one_line(tmp_path, model_without_sep_row, records_dir):
    """A loss scale of 2^32 overflows fp16 step after step: the divergence guard stops after 5 of them."""
    config = json.loads((ROOT / "ds_config.json").read_text())
    config["fp16"]["initial_scale_power"] = 32
    (tmp_path / "ds_overflow.json").write_text(json.dumps(config))
    out, cmd = train(tmp_path, model_without_sep_row, records_dir, tmp_path / "ds_overflow.json", "--fp16",
                     "--max_steps", "40", "--max_skipped_steps", "5")  # fmt: skip
    proc = run_process(cmd, cwd=tmp_path, env=script_env(), timeout=900)
    assert proc.returncode != 0
    said = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(said) == 1 and "5 optimizer steps in a row were skipped because the gradients overflowed" in said[0]
    assert not (out / "model.safetensors").exists()


def test_bf16_deepspeed_saves_bf16_weights(tmp_path, model_without_sep_row, records_dir):
    from safetensors.torch import load_file

    out, cmd = train(tmp_path, model_without_sep_row, records_dir, ROOT / "ds_config.json", "--bf16",
                     "--max_steps", "10")  # fmt: skip
    run_command(cmd, cwd=tmp_path)
    assert math.isfinite(json.loads((out / "all_results.json").read_text())["train_loss"])
    assert load_file(out / "model.safetensors")["transformer.h.0.attn.c_attn.weight"].dtype == torch.bfloat16


def test_a_real_cuda_out_of_memory_is_one_line(tmp_path, model_without_sep_row, records_dir):
    """The CUDA allocator limited to 3 MB (torch.cuda.set_per_process_memory_fraction): torch's real error and
    message, turned into one line by run_clm.py (tests/test_oom.py checks the wording with injected errors)."""
    import sys

    out = tmp_path / "out"
    code = (
        "import runpy, sys, torch; "
        "torch.cuda.set_per_process_memory_fraction(3e6 / torch.cuda.get_device_properties(0).total_memory); "
        f"sys.argv = ['run_clm.py'] + sys.argv[1:]; runpy.run_path({str(ROOT / 'run_clm.py')!r}, run_name='__main__')"
    )
    cmd = [sys.executable, "-c", code, "--model_name_or_path", str(model_without_sep_row), "--train_file",
           str(records_dir / "train.csv"), "--do_train", "--max_steps", "3", "--per_device_train_batch_size", "16",
           "--output_dir", str(out), "--report_to", "none", "--save_strategy", "no"]  # fmt: skip
    proc = run_process(cmd, cwd=tmp_path, env=script_env(), timeout=600)
    said = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(said) == 1, proc.stderr[-3000:]
    assert said[0].startswith("error: out of GPU memory ") and "tried to allocate " in said[0], said[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("attn", ["sdpa", "flash_attention_2"])
def test_train_throughput_runs_unchanged_on_cuda(tmp_path, attn):
    """bench/train_throughput.py as on CPU, with --device auto: bf16 autocast, CUDA memory, records kept apart."""
    import importlib.util

    from bench.train_throughput import main

    if attn == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        pytest.skip("flash-attn is not installed")
    out_path = tmp_path / "throughput.json"
    argv = ["--data", str(ROOT / "data" / "jobs_sample.csv"), "--config_overrides", "n_layer=2,n_embd=64,n_head=2",
            "--vocab_size", "4000", "--block_size", "1024", "--batch_size", "4", "--steps", "3", "--attn_implementation", attn,
            "--json_out", str(out_path)]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(out_path.read_text())
    assert out["machine"]["device"].startswith("cuda") and out["model"]["precision"] == "bf16 autocast"
    assert out["memory_method"].startswith("torch.cuda.max_memory_allocated")
    for name, r in out["modes"].items():
        assert 0 < r["useful_tokens_per_s"] <= r["total_tokens_per_s"], name
        assert r["peak_memory_mib"] > 0, name
    isolation = out["packed_isolation"]  # on CPU: 4 records in the fullest row, 0.0 difference
    assert isolation["isolated"] and isolation["records_in_row"] >= 2, isolation
