"""Freezing and per-layer learning rates under DeepSpeed (real launcher, CPU)."""

import json

import pytest
import torch
from conftest import DEEPSPEED, ROOT, free_port, run_command
from test_freezing import changed, load

pytestmark = pytest.mark.slow


def ds_train(tmp_path, config, model_dir, records_dir, *extra):
    out = tmp_path / "out"
    run_command(
        [DEEPSPEED, "--num_gpus=1", "--master_port", str(free_port()), str(ROOT / "run_clm.py"), "--deepspeed", str(ROOT / config),
         "--model_name_or_path", str(model_dir), "--train_file", str(records_dir / "train.csv"), "--do_train",
         "--max_steps", "3", "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--output_dir", str(out),
         "--report_to", "none", "--save_strategy", "no", *extra],
        cwd=tmp_path,
    )  # fmt: skip
    return out


def test_zero2_unfreeze_last_n_and_layerwise_rates(tmp_path, tiny_model_dir, records_dir):
    out = ds_train(tmp_path, "ds_config.json", tiny_model_dir, records_dir, "--unfreeze_last_n", "1",
                   "--layerwise_lr_decay", "0.5")  # fmt: skip
    groups = json.loads((out / "optimizer_groups.json").read_text())
    assert {(g["layer"], g["lr"]) for g in groups} == {("block.1", 5e-3), ("head", 1e-2)}
    before, after = load(tiny_model_dir), load(out)
    moved = changed(before, after)
    assert not {k for k in moved if ".h.0." in k or "wpe" in k}
    assert {k for k in before if ".h.1." in k and k.endswith("weight")} <= moved
    assert torch.equal(before["transformer.h.0.attn.c_attn.weight"], after["transformer.h.0.attn.c_attn.weight"])


def test_zero3_gradual_unfreezing_keeps_locked_groups(tmp_path, tiny_model_dir, records_dir):
    out = ds_train(tmp_path, "ds_config_zero3.json", tiny_model_dir, records_dir, "--unfreeze_schedule", "0:1,1000:all")
    before, after = load(tiny_model_dir), load(out)
    # the groups count whole parameters, although ZeRO-3 has split them over the ranks by then
    groups = json.loads((out / "optimizer_groups.json").read_text())
    assert all(g["parameters"] > 0 for g in groups)
    assert sum(g["parameters"] for g in groups) == sum(v.numel() for k, v in before.items() if k != "lm_head.weight")
    moved = changed(before, after)
    assert not {k for k in moved if ".h.0." in k or "wpe" in k}
    assert {k for k in before if ".h.1." in k and k.endswith("weight")} <= moved
