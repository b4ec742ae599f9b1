"""Two data-parallel DeepSpeed ranks on CPU, through the real ``deepspeed`` launcher.

Each rank runs ``run_clm``'s ``main`` with a Trainer that also records, per rank, the rows it trained
on and its final weights (``PROBE``, written next to the run), so the test can check that the ranks
split the data, took the steps of the global batch, and ended with identical weights.
"""

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import DEEPSPEED, ROOT, free_port, run_command, run_process, script_env

pytestmark = pytest.mark.slow

PROBE = """
import json, os, sys

import domainlm.trainer as trainer_module


class ProbeTrainer(trainer_module.DomainTrainer):
    def training_step(self, model, inputs, *args, **kwargs):
        mask = inputs.get("attention_mask")
        for i, row in enumerate(inputs["input_ids"]):
            self.probe_rows.append((row[mask[i].bool()] if mask is not None else row).tolist())
        loss = super().training_step(model, inputs, *args, **kwargs)
        self.probe_losses.append(float(loss))  # what the Trainer adds up into train_loss
        return loss

    def train(self, *args, **kwargs):
        import deepspeed
        from safetensors.torch import save_file

        self.probe_rows, self.probe_losses = [], []
        result = super().train(*args, **kwargs)
        module = self.accelerator.unwrap_model(self.model_wrapped)
        params = dict(module.named_parameters())
        with deepspeed.zero.GatheredParameters(list(params.values())):  # no-op below ZeRO-3
            weights = {k: v.detach().clone().contiguous() for k, v in params.items()}
        rank = self.args.process_index
        out = os.environ["PROBE_DIR"]
        save_file(weights, f"{out}/weights-rank{rank}.safetensors")
        info = {"process_index": rank, "world_size": self.args.world_size, "global_step": self.state.global_step,
                "is_world_process_zero": self.is_world_process_zero(), "rows": self.probe_rows,
                "losses": self.probe_losses}
        with open(f"{out}/rank{rank}.json", "w") as f:
            json.dump(info, f)
        return result


trainer_module.DomainTrainer = ProbeTrainer
from domainlm.errors import run_cli
from domainlm.train import main

sys.exit(run_cli(main))
"""


@pytest.fixture(scope="module")
def no_dropout_model_dir(tmp_path_factory, bpe_tokenizer_dir) -> Path:
    """The 2-layer GPT-2 of conftest without dropout, so that runs can be compared number for number."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(bpe_tokenizer_dir)
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=256, vocab_size=len(tok), resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id,
                        pad_token_id=tok.pad_token_id)  # fmt: skip
    out = tmp_path_factory.mktemp("tiny-gpt2-no-dropout")
    GPT2LMHeadModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def launch(tmp_path: Path, name: str, model: Path, records: Path, ranks: int, *flags: str) -> Path:
    run = tmp_path / name
    run.mkdir()
    (run / "probe.py").write_text(PROBE)
    port = free_port()
    cmd = [DEEPSPEED, f"--num_gpus={ranks}", "--master_port", str(port), str(run / "probe.py"),
           "--model_name_or_path", str(model), "--train_file", str(records / "train.csv"), "--do_train",
           "--output_dir", str(run / "out"), "--num_train_epochs", "1", "--learning_rate", "1e-3",
           "--warmup_steps", "0", "--save_strategy", "no", "--report_to", "none", "--seed", "7", *flags]  # fmt: skip
    proc = run_command(["env", f"PROBE_DIR={run}", *cmd], cwd=run)
    (run / "log.txt").write_text(proc.stdout + proc.stderr)
    # every rank removed its shared-memory all-reduce buffer (DeepSpeed leaves them in /dev/shm)
    assert sorted(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*")) == []
    return run


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path)


@pytest.mark.parametrize("config", ["ds_config.json", "ds_config_zero3.json"])
def test_two_ranks_split_the_data_and_end_with_identical_weights(tmp_path, no_dropout_model_dir, records_dir, config):
    from domainlm.args import ModelArguments
    from domainlm.modeling import load_tokenizer
    from domainlm.template import EOS_TOKEN

    # global batch 16 = 4 per rank x 2 accumulation x 2 ranks: 48 rows, 3 optimizer steps
    save = ["--save_strategy", "steps", "--save_steps", "3"] if config == "ds_config.json" else []
    run = launch(tmp_path, "two", no_dropout_model_dir, records_dir, 2, "--deepspeed", str(ROOT / config),
                 "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2", *save)  # fmt: skip
    ranks = [json.loads((run / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["process_index"], r["world_size"], r["is_world_process_zero"]) for r in ranks] == [
        (0, 2, True),
        (1, 2, False),
    ]
    log = (run / "log.txt").read_text()
    note = "(DeepSpeed without a GPU): global batch 16 = 4 per rank x 2 accumulation x 2 ranks"
    assert f"rank 0 of 2 {note}" in log  # the other rank logs warnings only, as the Trainer does
    assert [r["global_step"] for r in ranks] == [3, 3]
    # train_loss averages both ranks (3 steps, none logged: the Trainer alone reported rank 0's)
    per_rank = [sum(r["losses"]) / r["global_step"] for r in ranks]
    assert per_rank[0] != pytest.approx(per_rank[1], rel=1e-3)  # else the check below proves nothing
    results = json.loads((run / "out" / "all_results.json").read_text())
    assert results["train_loss"] == pytest.approx(sum(per_rank) / 2, rel=1e-6)

    # the ranks saw disjoint halves of the data, together every training row once
    tok = load_tokenizer(ModelArguments(model_name_or_path=str(no_dropout_model_dir)))
    with open(records_dir / "train.csv", encoding="utf-8", newline="") as f:
        expected = sorted(tok(r["text"] + EOS_TOKEN)["input_ids"] for r in csv.DictReader(f))
    assert len(ranks[0]["rows"]) == len(ranks[1]["rows"]) == 24
    assert sorted(ranks[0]["rows"] + ranks[1]["rows"]) == expected

    # identical weights on both ranks, equal to the saved model, and different from the start
    w0, w1 = tensors(run / "weights-rank0.safetensors"), tensors(run / "weights-rank1.safetensors")
    saved, start = tensors(run / "out" / "model.safetensors"), tensors(no_dropout_model_dir / "model.safetensors")
    assert w0.keys() == w1.keys() and saved.keys() <= w0.keys()
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    for key in saved:
        assert torch.equal(saved[key], w0[key]), key
        assert not torch.equal(saved[key], start[key]), key

    # (ZeRO-2) one rank with the same global batch (4 x 4 accumulation) takes the same 3 steps to the same weights
    if config != "ds_config.json":
        return
    assert_one_rank_refuses_the_two_rank_checkpoint(run / "out", no_dropout_model_dir, records_dir)
    one = launch(tmp_path, "one", no_dropout_model_dir, records_dir, 1, "--deepspeed", str(ROOT / config),
                 "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "4")  # fmt: skip
    assert json.loads((one / "rank0.json").read_text())["global_step"] == 3
    single = tensors(one / "out" / "model.safetensors")
    for key in saved:
        torch.testing.assert_close(saved[key], single[key], atol=1e-5, rtol=1e-4)


def assert_one_rank_refuses_the_two_rank_checkpoint(out: Path, model: Path, records: Path) -> None:
    """The same command on 1 rank continues from the last checkpoint by default, and ends with one line:
    ZeRO-2 partitions the optimizer state by rank, so DeepSpeed cannot load 2 ranks' state into 1."""
    from domainlm.guards import CHECKPOINT_INFO, Layout, saved_layout

    ckpt = out / "checkpoint-3"
    assert json.loads((ckpt / CHECKPOINT_INFO).read_text()) == {"deepspeed": True, "zero_stage": 2, "world_size": 2}
    # a checkpoint written without domainlm_checkpoint.json (by another tool): the layout is read from
    # DeepSpeed's own files (ZeRO-1 and ZeRO-2 write the same ones, so the stage stays open)
    info = (ckpt / CHECKPOINT_INFO).read_bytes()
    (ckpt / CHECKPOINT_INFO).unlink()
    assert saved_layout(ckpt) == Layout(True, None, 2)
    (ckpt / CHECKPOINT_INFO).write_bytes(info)
    port = free_port()
    cmd = [DEEPSPEED, "--num_gpus=1", "--master_port", str(port), str(ROOT / "run_clm.py"),
           "--model_name_or_path", str(model), "--train_file", str(records / "train.csv"), "--do_train",
           "--output_dir", str(out), "--max_steps", "6", "--report_to", "none", "--deepspeed",
           str(ROOT / "ds_config.json"), "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "4"]  # fmt: skip
    proc = run_process(cmd, env=script_env(), timeout=600)
    said = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and said == [
        f"error: cannot resume from {ckpt}: it was saved under DeepSpeed ZeRO stage 2 on 2 processes and this run "
        "trains under DeepSpeed ZeRO stage 2 on 1 process; resume with the --deepspeed config and number of "
        f"processes it was saved with, or pass --model_name_or_path {ckpt} --overwrite_output_dir to start a new "
        "run from its weights"
    ], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "AssertionError" not in proc.stderr
    assert sorted(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*")) == []


@pytest.mark.parametrize("mode", ["records", "packed"])
def test_two_ranks_evaluate_as_one_process_does(tmp_path, no_dropout_model_dir, records_dir, mode):
    """eval_loss, perplexity and accuracy of one model: 2 ZeRO-3 ranks report what 1 process reports.

    An odd number of rows leaves the ranks' last batches uneven, so the Trainer repeats a row to even them
    out and must drop it again from the figures (packed rows included, whose training batches are joined).
    """
    from domainlm.train import main

    flags = ["--model_name_or_path", str(no_dropout_model_dir), "--validation_file", str(records_dir / "validation.csv"),
             "--do_eval", "--per_device_eval_batch_size", "2", "--sequence_mode", mode, "--block_size", "128",
             "--max_eval_samples", "3", "--report_to", "none"]  # fmt: skip
    main([*flags, "--output_dir", str(tmp_path / "one")])
    port = free_port()
    cmd = [DEEPSPEED, "--num_gpus=2", "--master_port", str(port), str(ROOT / "run_clm.py"), *flags,
           "--deepspeed", str(ROOT / "ds_config_zero3.json"), "--output_dir", str(tmp_path / "two")]  # fmt: skip
    run_command(cmd, cwd=tmp_path)
    one, two = (json.loads((tmp_path / name / "all_results.json").read_text()) for name in ("one", "two"))
    assert two["eval_samples"] == one["eval_samples"] == 3
    for key in ("eval_loss", "eval_perplexity", "eval_accuracy"):
        assert two[key] == pytest.approx(one[key], rel=1e-5), key
