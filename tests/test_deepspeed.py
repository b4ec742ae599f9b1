"""End to end through the real ``deepspeed`` launcher on CPU, with both configs.

The first run on a machine compiles DeepSpeed's CPU ops (about two minutes); later runs reuse them.
"""

import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import DEEPSPEED, ROOT, free_port, run_command

pytestmark = pytest.mark.slow


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def load_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def check_output_folder(out: Path, start: Path) -> dict:
    """Loss finite, every weight matrix of the blocks changed, perplexity written, pipeline generates."""
    from transformers import pipeline

    from domainlm.template import SEP_TOKEN, format_prompt

    results = json.loads((out / "all_results.json").read_text())
    assert math.isfinite(results["train_loss"])
    assert math.isfinite(results["eval_perplexity"]) and results["eval_perplexity"] > 1
    assert 0 <= results["eval_accuracy"] <= 1
    before, after = load_tensors(start), load_tensors(out)
    changed = [k for k in before if k in after and not (before[k] == after[k]).all()]
    blocks = [k for k in before if ".h." in k and k.endswith(".weight")]
    assert blocks and set(blocks) <= set(changed), sorted(set(blocks) - set(changed))
    generator = pipeline("text-generation", model=str(out))
    prompt = format_prompt("Data Scientist", ["python", "sql"])
    text = generator(prompt, max_new_tokens=20)[0]["generated_text"]
    assert text.startswith(prompt) and text.count(SEP_TOKEN) >= 2 and len(text) > len(prompt)
    return results


def test_guide_command_verbatim_with_zero2(tmp_path, tiny_model_dir, records_dir):
    for name in ("train.csv", "validation.csv"):
        shutil.copy(records_dir / name, tmp_path / name)
    shutil.copy(ROOT / "ds_config.json", tmp_path / "ds_config.json")
    # the GPT2-XL guide's command, as a shell runs it: only the model (and script path) differ
    guide = (
        f"deepspeed --num_gpus=1 {ROOT / 'run_clm.py'} --deepspeed ds_config.json --model_name_or_path {tiny_model_dir} "
        "--train_file train.csv --validation_file validation.csv --do_train --do_eval --fp16 --overwrite_cache "
        '--evaluation_strategy="steps" --output_dir finetuned --eval_steps 200 --num_train_epochs 1 '
        "--gradient_accumulation_steps 2 --per_device_train_batch_size 8"
    )
    if not port_is_free(29500):  # the launcher's default port, taken by another run on this machine
        guide = guide.replace("--num_gpus=1", f"--num_gpus=1 --master_port {free_port()}")
    proc = run_command(["bash", "-c", f"PATH={Path(DEEPSPEED).parent}:$PATH {guide}"], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert "--fp16 needs a CUDA GPU and none was found: training in fp32 instead" in log
    assert "Gradient accumulation steps mismatch" not in log  # accelerate's, about the Trainer's own choice
    results = check_output_folder(tmp_path / "finetuned", tiny_model_dir)
    assert results["train_samples"] == 48 and results["eval_samples"] == 8
    # the tied output head is saved once, as save_pretrained does outside DeepSpeed
    assert "lm_head.weight" not in load_tensors(tmp_path / "finetuned")


def test_zero3_from_scratch_saves_full_weights(tmp_path, bpe_tokenizer_dir, records_dir, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    port = free_port()
    run_command(
        [DEEPSPEED, "--num_gpus=1", "--master_port", str(port), str(ROOT / "run_clm.py"), "--deepspeed",
         str(ROOT / "ds_config_zero3.json"),
         "--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"),
         "--validation_file", str(records_dir / "validation.csv"), "--do_train", "--do_eval",
         "--output_dir", str(tmp_path / "out"), "--num_train_epochs", "1", "--per_device_train_batch_size", "8",
         "--learning_rate", "1e-3", "--report_to", "none"],
        cwd=tmp_path,
    )  # fmt: skip
    # DeepSpeed's shared-memory all-reduce buffer (about 70 MB per rank) does not outlive the run
    assert sorted(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*")) == []
    out = tmp_path / "out"
    check_output_folder(out, tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(out)
    unique = {p.data_ptr(): p.numel() for p in model.parameters()}
    weights = (out / "model.safetensors").stat().st_size
    # full fp32 weights, not the empty placeholders ZeRO-3 holds on each rank
    assert sum(unique.values()) * 4 <= weights < sum(unique.values()) * 4 * 1.6


def test_zero3_config_without_the_gather_key_still_saves_a_loadable_model(tmp_path, tiny_model_dir, records_dir):
    """A ZeRO-3 config from a guide, with CPU offload but no ``stage3_gather_16bit_weights_on_model_save``:
    the run ended with status 0 and an output folder without model.safetensors that pipeline(...) cannot load."""
    from transformers import pipeline

    config = json.loads((ROOT / "ds_config_zero3.json").read_text())
    del config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]
    (tmp_path / "zero3.json").write_text(json.dumps(config, indent=2))
    proc = run_command(
        [DEEPSPEED, "--num_gpus=1", "--master_port", str(free_port()), str(ROOT / "run_clm.py"), "--deepspeed",
         "zero3.json", "--model_name_or_path", str(tiny_model_dir), "--train_file", str(records_dir / "train.csv"),
         "--do_train", "--output_dir", "out", "--max_steps", "2", "--per_device_train_batch_size", "8",
         "--report_to", "none", "--disable_tqdm", "true"],
        cwd=tmp_path,
    )  # fmt: skip
    assert (
        "zero3.json has no stage3_gather_16bit_weights_on_model_save under ZeRO-3: set to true, so that the model is "
        "saved with its full weights" in proc.stdout + proc.stderr
    )
    out = tmp_path / "out"
    weights, start = load_tensors(out), load_tensors(tiny_model_dir)
    assert weights.keys() == start.keys() - {"lm_head.weight"} or weights.keys() == start.keys()
    assert all(weights[k].shape == start[k].shape for k in weights)
    assert not (out / "global_step2").exists()  # not the DeepSpeed checkpoint the Trainer saves instead
    generator = pipeline("text-generation", model=str(out))
    assert generator("Data", max_new_tokens=3)[0]["generated_text"].startswith("Data")
