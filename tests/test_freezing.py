"""What is trained: freezing, gradual unfreezing and layer-wise learning rates."""

import json

import pytest
import torch

from domainlm.errors import UserError
from domainlm.freezing import (
    UnfreezeSchedule,
    depths,
    freeze_all_but_last,
    gated_lambdas,
    parameter_groups,
)
from domainlm.train import main


def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=8, n_head=2, vocab_size=30, n_positions=16))


def test_depths_put_the_tied_embedding_in_the_head():
    d = depths(tiny_gpt2())
    assert d["transformer.wpe.weight"] == 0
    assert d["transformer.h.0.attn.c_attn.weight"] == 1 and d["transformer.h.1.mlp.c_fc.bias"] == 2
    assert d["transformer.wte.weight"] == 3 and d["transformer.ln_f.weight"] == 3


def test_freeze_all_but_last():
    model = tiny_gpt2()
    counts = freeze_all_but_last(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    block = ("attn.c_attn", "attn.c_proj", "ln_1", "ln_2", "mlp.c_fc", "mlp.c_proj")
    last = {f"transformer.h.1.{m}.{w}" for m in block for w in ("weight", "bias")}
    assert trainable == last | {"transformer.ln_f.weight", "transformer.ln_f.bias", "transformer.wte.weight"}
    # n_embd 8: a block holds 872 numbers, ln_f 16, the tied embedding 30 x 8; wpe 16 x 8 stays frozen
    assert counts == {"trainable": 872 + 16 + 240, "frozen": 128 + 872}


def test_layerwise_rates_exact():
    model = tiny_gpt2()
    decay = {n for n, _ in model.named_parameters() if n.endswith("weight") and "ln" not in n}
    groups = parameter_groups(model, lr=1e-3, weight_decay=0.1, decay_names=decay, layerwise_lr_decay=0.5)
    got = [(g["layer"], g["lr"], g["weight_decay"]) for g in groups]
    assert got == [
        ("embeddings", 1.25e-4, 0.1),
        ("block.0", 2.5e-4, 0.0),
        ("block.0", 2.5e-4, 0.1),
        ("block.1", 5e-4, 0.0),
        ("block.1", 5e-4, 0.1),
        ("head", 1e-3, 0.0),
        ("head", 1e-3, 0.1),
    ]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_schedule_parse_and_gates():
    schedule = UnfreezeSchedule.parse("100:4, 0:1 ,200:all")
    assert schedule.stages == [(0, 1), (100, 4), (200, "all")]
    assert [schedule.n_last(s, 0) for s in (0, 99, 100, 250)] == [1, 1, 4, "all"]
    assert UnfreezeSchedule.parse("1:all", "epochs").n_last(5, 0.99) == 0  # before epoch 1 nothing but the head
    groups = [{"depth": d} for d in (0, 1, 2, 3)]  # embeddings, block.0, block.1, head of a 2-block model
    lambdas = gated_lambdas(lambda s: 0.5, groups, UnfreezeSchedule.parse("0:1,10:all"), 2, lambda: 0.0)
    assert [f(0) for f in lambdas] == [0.0, 0.0, 0.5, 0.5]
    assert [f(10) for f in lambdas] == [0.5, 0.5, 0.5, 0.5]
    with pytest.raises(UserError, match=r"^--unfreeze_schedule '0-2': expected \"STEP:N,STEP:N,...\", e\.g\. "):
        UnfreezeSchedule.parse("0-2")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0:1,0:all", "a step is given twice"),  # was a TypeError from sorting 1 against "all"
        ("0:2,100:4,100:6", "a step is given twice"),
        ("0:-1", "0:-1 counts below 0"),  # trained nothing at all, the head included, and said nothing
        ("-5:2,10:all", "-5:2 counts below 0"),
    ],
)
def test_schedule_mistakes_are_one_line(text, why):
    with pytest.raises(UserError) as err:
        UnfreezeSchedule.parse(text)
    assert str(err.value) == f'--unfreeze_schedule {text!r}: {why}; expected "STEP:N,..." such as "0:2,100:4,200:all"'


@pytest.mark.parametrize(("text", "later", "earlier"), [("5:1,1:all", "5:1", "1:all"), ("0:3,50:2", "50:2", "0:3"),
                                                      ("0:2,9:all,20:all", "20:all", "9:all"), ("0:2,5:2", "5:2", "0:2")])  # fmt: skip
def test_a_stage_that_would_freeze_blocks_again_is_refused(text, later, earlier):
    """Unfrozen blocks stay unfrozen: a later stage with no more blocks did nothing, without a word."""
    with pytest.raises(UserError) as err:
        UnfreezeSchedule.parse(text)
    assert str(err.value) == (
        f"--unfreeze_schedule {text!r}: {later} unfreezes no more blocks than {earlier} before it; "
        'each stage adds blocks, e.g. "0:2,100:4,200:all"'
    )
    assert UnfreezeSchedule.parse("100:4,0:2,200:all").stages == [(0, 2), (100, 4), (200, "all")]  # order given: free


def test_a_schedule_over_the_model_s_blocks_is_refused_as_unfreeze_last_n_is(tmp_path, tiny_model_dir, records_dir):
    with pytest.raises(UserError) as err:
        train(tmp_path, tiny_model_dir, records_dir, "--unfreeze_schedule", "0:1,2:3")
    assert (
        str(err.value) == "--unfreeze_schedule: 2:3 unfreezes 3 blocks and the model has 2; write 2:all for every block"
    )
    assert not (tmp_path / "out").exists()


def load(folder):
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def changed(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


def train(tmp_path, model_dir, records_dir, *extra):
    out = tmp_path / "out"
    main(
        ["--model_name_or_path", str(model_dir), "--train_file", str(records_dir / "train.csv"), "--do_train",
         "--max_steps", "3", "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--output_dir", str(out),
         "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true", *extra]
    )  # fmt: skip
    return out


def test_unfreeze_last_n_trains_only_the_top(tmp_path, tiny_model_dir, records_dir):
    out = train(tmp_path, tiny_model_dir, records_dir, "--unfreeze_last_n", "1")
    before, after = load(tiny_model_dir), load(out)
    moved = changed(before, after)
    frozen = {k for k in before if ".h.0." in k or "wpe" in k}
    assert frozen and not (moved & frozen)
    assert {k for k in before if ".h.1." in k and k.endswith("weight")} <= moved
    assert {"transformer.wte.weight", "transformer.ln_f.weight"} <= moved


def test_gradual_unfreezing_with_layerwise_rates(tmp_path, tiny_model_dir, records_dir):
    out = train(tmp_path, tiny_model_dir, records_dir, "--unfreeze_schedule", "0:1,2:all", "--layerwise_lr_decay", "0.5",
                "--warmup_steps", "0", "--lr_scheduler_type", "constant", "--logging_steps", "1")  # fmt: skip
    # the logged rate is the head's, as --learning_rate names it (the embeddings' group is locked at first)
    log = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [e["learning_rate"] for e in log if "learning_rate" in e] == [1e-2, 1e-2, 1e-2]
    groups = json.loads((out / "optimizer_groups.json").read_text())
    assert {(g["layer"], g["lr"], g["trains_from_step"]) for g in groups} == {
        ("embeddings", 1.25e-3, 2), ("block.0", 2.5e-3, 2), ("block.1", 5e-3, 0), ("head", 1e-2, 0),
    }  # fmt: skip
    moved = changed(load(tiny_model_dir), load(out))
    # block.0 and the position embeddings were locked for steps 0-1 and open for step 2: they moved once
    assert any(".h.0." in k for k in moved) and "transformer.wpe.weight" in moved
    # the same schedule stopped after step 1 leaves them exactly as they were
    early = train(tmp_path / "early", tiny_model_dir, records_dir, "--unfreeze_schedule", "0:1,2:all",
                  "--warmup_steps", "0", "--lr_scheduler_type", "constant", "--max_steps", "2")  # fmt: skip
    moved_early = changed(load(tiny_model_dir), load(early))
    assert not {k for k in moved_early if ".h.0." in k or "wpe" in k}
    assert "transformer.wte.weight" in moved_early


def test_locked_groups_stay_exactly_unchanged(tmp_path, tiny_model_dir, records_dir):
    out = train(tmp_path, tiny_model_dir, records_dir, "--unfreeze_schedule", "0:1,1000:all")
    before, after = load(tiny_model_dir), load(out)
    moved = changed(before, after)
    assert not {k for k in moved if ".h.0." in k or "wpe" in k}
    assert {k for k in before if ".h.1." in k and k.endswith("weight")} <= moved
