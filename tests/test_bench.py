"""The benchmarks under bench/ run on a tiny setting and their figures hang together. Not timed tests."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, forbid, sample_rows

TINY_MODEL = "n_layer=2,n_embd=32,n_head=2"


@pytest.fixture(scope="module")
def postings_csv(tmp_path_factory) -> Path:
    """40 raw postings (title, keywords, text) with 40-word bodies: short records for a tiny block."""
    from domainlm.tables import write_csv

    path = tmp_path_factory.mktemp("postings") / "postings.csv"
    write_csv(path, sample_rows(40, 40), ["title", "keywords", "text"])
    return path


def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<|endoftext|>", "<|pad|>", "<unk>", "a", "b", "c", "d", "e", "f", "g"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|pad|>", unk_token="<unk>"
    )


def test_batch_stats_exact():
    from bench.modes import batch_stats
    from domainlm.data import CausalLMCollator

    rows = [{"input_ids": [3, 4, 5, 0]}, {"input_ids": [6, 0]}]
    batch = CausalLMCollator(pad_token_id=1, pad_to_multiple_of=8)(rows)
    stats = batch_stats(batch, [4, 2])
    # 2 rows x 8 positions; 6 real; targets at positions 1.. : 3 + 1 (position 0 is never a target)
    assert (stats.total, stats.real, stats.useful) == (16, 6, 4)
    assert stats.padding == pytest.approx(10 / 16)


def test_packing_bounds_exact():
    from bench.modes import packing_bounds

    # 6 and 7 are over half of 10, so they cannot share: at least 2 rows, and 3 by volume (6+7+3+2+4=22)
    assert packing_bounds([6, 7, 3, 2, 4], 10) == {"records_over_half_block": 2, "min_rows": 3, "max_fill": 0.7333}
    assert packing_bounds([6, 7, 8], 10)["min_rows"] == 3


def test_modes_exact_layouts():
    from datasets import Dataset

    from bench.modes import build_modes
    from domainlm.data import tokenize_records

    texts = ["a b c d", "e f", "g a b c d e f", "a", "b c"]  # 5, 3, 8, 2, 3 tokens with end-of-text
    records = tokenize_records(Dataset.from_dict({"text": texts}), word_tokenizer(), 10, keep_text=True)
    data = build_modes(records, word_tokenizer(), block_size=10, batch_size=2, seed=0)

    pad_max = data["pad_max"]
    assert [b["input_ids"].shape for b in pad_max.batches] == [(2, 10), (2, 10), (1, 10)]
    assert pad_max.totals().real == 21 and pad_max.totals().total == 50
    dynamic = data["dynamic"]  # same record order as pad_max, padded to each batch's longest
    assert [b["input_ids"].shape[1] for b in dynamic.batches] == [
        int(b["attention_mask"].sum(1).max()) for b in dynamic.batches
    ]
    for mode in ("pad_max", "dynamic", "grouped", "packed"):  # the same targets: 21 tokens - 5 first tokens
        assert data[mode].totals().useful == 16, mode
        assert data[mode].records == 5
    packed = data["packed"]
    assert sum(len(b["input_ids"]) for b in packed.batches) == 3  # 8+2 | 5+3 | 3: best-fit decreasing
    assert "attention_mask" not in packed.batches[0]
    concat = data["concat"]  # 21 tokens in one map batch: two full blocks, the tail dropped
    assert [tuple(b["input_ids"].shape) for b in concat.batches] == [(2, 10)]
    assert concat.totals().padding == 0 and concat.totals().useful == 18

    # the timed sample spreads over batch sizes; the largest batch is the one with most positions
    assert sorted(dynamic.sample(3)) == sorted(range(3))
    assert dynamic.stats[dynamic.largest()].total == max(s.total for s in dynamic.stats)
    assert len(dynamic.sample(7)) == 7


def test_train_throughput_tiny(postings_csv, tmp_path, capsys):
    from bench.train_throughput import main

    out_path = tmp_path / "throughput.json"
    argv = ["--data", str(postings_csv), "--config_overrides", TINY_MODEL, "--vocab_size", "400",
            "--block_size", "1024", "--batch_size", "2", "--steps", "2", "--profile", "packed",
            "--json_out", str(out_path)]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(out_path.read_text())
    modes = out["modes"]
    assert list(modes) == ["pad_max", "concat", "dynamic", "grouped", "packed"]
    for name, r in modes.items():
        assert 0 < r["useful_tokens_per_s"] <= r["total_tokens_per_s"], name
        assert r["useful_tokens_per_s"] == pytest.approx(r["useful_fraction"] * r["total_tokens_per_s"], rel=1e-3)
        assert 0 <= r["padding_fraction"] <= 1 and 0 <= r["timed_steps"]["padding_fraction"] <= 1, name
        assert r["useful_fraction"] <= 1 - r["padding_fraction"] + 1e-9, name  # pads never carry loss
        assert r["epoch"]["useful_tokens"] <= r["epoch"]["total_tokens"], name
        timed = r["timed_steps"]
        assert timed["steps"] == 2 and 0 < timed["useful_tokens_per_s"] <= timed["total_tokens_per_s"], name
        assert r["peak_memory_mib"] > 0 and r["step_memory_increase_mib"] >= 0, name
    padding = {name: r["padding_fraction"] for name, r in modes.items()}
    assert max(padding, key=padding.get) == "pad_max"
    assert padding["concat"] == 0
    assert padding["packed"] < min(0.15, padding["pad_max"] / 4)  # short records fill the rows
    # the same records in every record mode: the same targets per epoch
    assert len({modes[m]["epoch"]["useful_tokens"] for m in ("pad_max", "dynamic", "grouped", "packed")}) == 1
    assert out["packed_isolation"]["isolated"] and out["packed_isolation"]["records_in_row"] >= 2
    assert modes["concat"]["records_attend_to_others"] and not modes["packed"]["records_attend_to_others"]
    c = out["comparisons"]["packed_vs_pad_max"]
    assert c["ratio"] == pytest.approx(
        modes["packed"]["useful_tokens_per_s"] / modes["pad_max"]["useful_tokens_per_s"], rel=1e-2
    )
    assert c["ratio"] == pytest.approx(c["equal_cost_per_position_ratio"] * c["cost_per_position_ratio"], rel=1e-2)
    assert out["corpus"]["packing"]["fill"] <= out["corpus"]["packing"]["max_fill"]
    assert out["profiles"]["packed"]["forward_ms"] > 0
    assert out["model"]["attn_implementation"] == "sdpa_packed"  # packed rows: per-record attention, as training
    printed = capsys.readouterr().out
    assert "| packed |" in printed and "packed / concat" in printed


def test_train_throughput_packed_against_the_mask_path(postings_csv, tmp_path, capsys):
    from bench.train_throughput import main

    out_path = tmp_path / "throughput.json"
    argv = ["--data", str(postings_csv), "--config_overrides", TINY_MODEL, "--vocab_size", "400",
            "--block_size", "512", "--batch_size", "2", "--steps", "1", "--modes", "packed", "packed_mask",
            "--json_out", str(out_path)]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(out_path.read_text())
    packed, mask = out["modes"]["packed"], out["modes"]["packed_mask"]
    # the same rows in the same steps; packed joins each batch's rows end to end, so it computes no pad tails
    assert packed["epoch"]["steps"] == mask["epoch"]["steps"]
    assert packed["epoch"]["useful_tokens"] == mask["epoch"]["useful_tokens"]
    assert packed["padding_fraction"] == 0 < mask["padding_fraction"]
    assert packed["epoch"]["total_tokens"] == round(mask["epoch"]["total_tokens"] * (1 - mask["padding_fraction"]))
    c = out["comparisons"]["packed_vs_packed_mask"]
    share = mask["epoch"]["total_tokens"] / packed["epoch"]["total_tokens"]
    assert c["equal_cost_per_position_ratio"] == pytest.approx(share, rel=1e-2) and c["goal"] is None
    assert out["model"]["attn_implementation"] == "sdpa_packed"  # restored after each packed_mask step
    assert "packed / packed_mask, the same rows in the same steps" in capsys.readouterr().out


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED_DATA / "jobs" / "linkedin_936.pkl").is_file(), reason="real postings not found")
def test_train_throughput_reads_the_real_postings_by_default(tmp_path):
    from bench.train_throughput import main

    out_path = tmp_path / "throughput.json"
    argv = ["--max_records", "24", "--config_overrides", TINY_MODEL, "--vocab_size", "400", "--modes", "concat",
            "packed", "--batch_size", "2", "--steps", "1", "--json_out", str(out_path)]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(out_path.read_text())
    assert out["corpus"]["source"].endswith("linkedin_936.pkl") and out["corpus"]["postings_read"] == 936
    assert out["corpus"]["rows_prepared"] == 24
    assert out["packed_isolation"]["isolated"]
    assert out["comparisons"]["packed_vs_pad_max"]["ratio"] is None  # pad_max not run


def test_data_throughput_tiny(postings_csv, tmp_path):
    from bench.data_throughput import main

    out_path = tmp_path / "data.json"
    assert (
        main(["--data", str(postings_csv), "--repeats", "1", "--vocab_size", "400", "--json_out", str(out_path)]) == 0
    )
    stages = json.loads(out_path.read_text())["stages"]
    assert stages["prepare_jobs csv"]["rows"] == 40
    for name, s in stages.items():
        assert s["rows_per_s"] > 0 and len(s["seconds"]) == 1, name
    # training's tokenisation is the bare tokenizer plus one end-of-text per row (no row is over the block)
    assert stages["tokenize_records (datasets.map)"]["tokens"] == stages["tokenizer(texts) alone"]["tokens"] + 40


def test_data_scale_tiny(tmp_path):
    from bench.data_scale import TEXT_STAGES, main

    out_path = tmp_path / "scale.json"
    argv = ["--sizes_mb", "0.05", "0.1", "--vocab_size", "300", "--block_size", "1024", "--json_out", str(out_path),
            "--stages", *TEXT_STAGES]  # fmt: skip
    assert main(argv) == 0
    stages = json.loads(out_path.read_text())["stages"]
    assert list(stages) == [f"{s} @ {mb} MB" for mb in ("0.05", "0.1") for s in TEXT_STAGES]
    small, large = stages["text2csv paragraph @ 0.05 MB"], stages["text2csv paragraph @ 0.1 MB"]
    assert 0 < small["paragraphs"] < large["paragraphs"]
    for name, r in stages.items():
        assert r["seconds"] > 0 and 0 <= r["growth_mib"] <= r["peak_rss_mib"], name
        assert r["s_per_mb"] == pytest.approx(r["seconds"] / r["mb"]), name
        if not name.startswith("text2csv"):
            assert 0 < r["packed_rows"] <= r["records"], name
    for stage in ("text2csv paragraph", "text2csv tokens"):
        assert 0 < stages[f"{stage} @ 0.05 MB"]["examples"] < stages[f"{stage} @ 0.1 MB"]["examples"]


def test_data_scale_prepare_jobs_against_a_baseline_checkout(tmp_path, capsys):
    """The user's command, run alternating with another checkout's (here the same one): same output."""
    from conftest import ROOT

    from bench.data_scale import main

    out_path = tmp_path / "scale.json"
    argv = ["--stages", "prepare_jobs pkl", "--sizes_mb", "0.02", "--jobs_length_unit", "words",
            "--baseline_code", str(ROOT), "--repeats", "2", "--json_out", str(out_path)]  # fmt: skip
    assert main(argv) == 0
    stages = json.loads(out_path.read_text())["stages"]
    assert list(stages) == ["prepare_jobs pkl @ 0.02 MB", "prepare_jobs pkl (baseline) @ 0.02 MB"]
    ours, theirs = stages.values()
    assert ours["differs_from_baseline"] == [] and "differs_from_baseline" not in theirs
    for r in (ours, theirs):
        assert r["postings"] > 0 and r["mb"] == r["input_mb"] > 0.02 and len(r["runs"]) == 2
        assert r["seconds"] > 0 and 0 < r["growth_mib"] < r["peak_rss_mib"]
    assert "prepare_jobs pkl @ 0.02 MB, baseline / this:" in capsys.readouterr().out


def test_memory_switches_tiny(tmp_path):
    from bench.memory_switches import main

    out_path = tmp_path / "switches.json"
    argv = ["--config_overrides", TINY_MODEL, "--vocab_size", "1000", "--seq_len", "64", "--steps", "1",
            "--json_out", str(out_path)]  # fmt: skip
    assert main(argv) == 0
    configs = json.loads(out_path.read_text())["configs"]
    assert list(configs) == ["baseline", "checkpointing", "fused_gelu", "padded_vocab", "all"]
    assert configs["baseline"]["embedding_rows"] == 1000 and configs["padded_vocab"]["embedding_rows"] == 1024
    assert configs["all"]["embedding_rows"] == 1024
    assert configs["fused_gelu"]["activation_function"] == "gelu_pytorch_tanh"
    assert configs["baseline"]["activation_function"] == "gelu_new"
    # what autograd keeps is counted exactly: both switches keep less than the baseline
    saved = {name: c["saved_for_backward_mib"] for name, c in configs.items()}
    assert saved["checkpointing"] < saved["baseline"] and saved["fused_gelu"] < saved["baseline"]
    for c in configs.values():
        assert c["step_s_median"] > 0 and c["step_peak_increase_mib"] >= 0


@pytest.mark.parametrize("script", ["train_throughput", "data_throughput", "data_scale", "memory_switches"])
def test_scripts_answer_help(script):
    from conftest import PYTHON, ROOT, run_command

    proc = run_command([PYTHON, str(ROOT / "bench" / f"{script}.py"), "--help"], cwd=ROOT.parent)
    assert "--json_out" in proc.stdout


def test_measure_resets_the_peak_per_step():
    """A large allocation in one block does not show up as the peak of the next one (Linux)."""
    from bench.measure import MIB, PeakMemory

    device = torch.device("cpu")
    with PeakMemory(device) as first:
        big = torch.ones(64 * MIB // 4)  # 64 MiB
        del big
    with PeakMemory(device) as second:
        small = torch.ones(MIB // 4)
        del small
    if "process-wide" in second.sample.method:
        pytest.skip("this system cannot reset the peak resident set")
    assert first.sample.increase >= 48 * MIB
    assert second.sample.increase < 16 * MIB


def run_bench(script: str, flags: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python bench/SCRIPT.py FLAGS`` as a user runs it."""
    from conftest import PYTHON, ROOT, script_env

    cmd = [PYTHON, str(ROOT / "bench" / f"{script}.py"), *flags]
    return subprocess.run(cmd, cwd=cwd, env=script_env(), capture_output=True, text=True, timeout=300)


def assert_one_error_line(status: int, out: str, err: str, error: str) -> None:
    """Exit status 2, nothing on stdout, and stderr one line: ``error: `` then ``error`` (a regex)."""
    assert status == 2 and out == "", (status, out, err)
    assert re.fullmatch(f"error: {error}\n", err), err


@pytest.fixture
def no_work(monkeypatch):
    """Work that a check must come before: the data preparation (train and data throughput) and the runs
    (memory switches). Starting either fails the test."""
    import bench.corpus
    import bench.memory_switches

    forbid(monkeypatch, (bench.corpus, "prepare_rows"), (bench.memory_switches, "run"))


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--model_dir", "work/nope"], r"--model_dir work/nope: no such folder; give a folder written by run_clm\.py.*"),
        (["--model_dir", "{model}/config.json"], r"--model_dir .*/config\.json is a file; give the folder that holds it.*"),
        (["--model_dir", "{model}", "--prompts_file", "work/nope.csv"], r"--prompts_file work/nope\.csv: no such file; .*"),
        (["--model_dir", "{model}", "--prompts_file", "."], r"--prompts_file \. is a folder; .*"),
        (["--strategies", "greedy", "gredy"], r"--strategies gredy: choose from greedy, beam, top_k, top_p, top_k_top_p"),
        (["--rounds", "0"], r"--rounds 0: must be at least 1"),
        (["--num_prompts", "0"], r"--num_prompts 0: must be at least 1"),
        (["--threads", "0"], r"--threads 0: must be at least 1"),
        (["--max_new_tokens", "0"], r"--max_new_tokens 0: must be at least 1"),
    ],
)  # fmt: skip
def test_generation_throughput_refuses_bad_input_in_one_line(flags, error, tiny_model_dir, tmp_path):
    proc = run_bench("generation_throughput", [f.format(model=tiny_model_dir) for f in flags], cwd=tmp_path)
    assert_one_error_line(proc.returncode, proc.stdout, proc.stderr, error)


def test_generation_throughput_tiny(tiny_model_dir, postings_csv, capsys):
    import logging

    import torch

    from bench.generation_throughput import main

    argv = ["--model_dir", str(tiny_model_dir), "--prompts_file", str(postings_csv), "--num_prompts", "3",
            "--max_new_tokens", "4", "--batch_size", "2", "--strategies", "greedy", "--threads", "1"]  # fmt: skip
    before = logging.getLogger("transformers").level, torch.get_num_threads()
    results = main(argv)
    # put back for what runs next in this process: the Trainer hides its progress bar when transformers'
    # logger is quieter than WARNING, and one thread would slow every later test
    assert (logging.getLogger("transformers").level, torch.get_num_threads()) == before
    assert list(results) == ["greedy"]
    assert results["greedy"]["totals"]["batched"][0] > 0 and results["greedy"]["speedup"] > 0
    out = capsys.readouterr().out
    assert "3 prompts from" in out and "| greedy | batched | 3 |" in out


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--data", "{tmp}/postings.pkl", "--repeats", "0"], r"--repeats 0: must be at least 1"),
        (["--data", "nope.pkl"], r"--data nope\.pkl: no such file; give a \.pkl or \.csv file of postings with their keywords"),
        (["--data", "{tmp}"], r"--data {tmp} is a folder; .*"),
        # only the default file gets the hint about where the real postings live
        ([], r"{tmp}/shared/linkedin_936\.pkl: not found \(the real postings live outside the repository, in "
             r"\.\./shared/data\); put them there, or pass --data FILE"),
        (["--data", "{tmp}/postings.pkl", "--json_out", "{tmp}/postings.pkl/kw.json"],
         r"--json_out {tmp}/postings\.pkl/kw\.json: {tmp}/postings\.pkl is a file, not a folder; give another path"),
    ],
)  # fmt: skip
def test_keyword_agreement_refuses_bad_input_before_any_run(flags, error, tmp_path, monkeypatch, capsys):
    import bench.keyword_agreement as kw
    from domainlm.errors import run_cli

    forbid(monkeypatch, (kw, "run_prepare"))
    monkeypatch.setattr(kw, "DEFAULT_DATA", tmp_path / "shared" / "linkedin_936.pkl")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "postings.pkl").write_bytes(b"")
    status = run_cli(kw.main, [f.format(tmp=tmp_path) for f in flags])
    assert_one_error_line(status, *capsys.readouterr(), error.format(tmp=re.escape(str(tmp_path))))


def test_keyword_agreement_goes_through_run_cli(tmp_path):
    proc = run_bench("keyword_agreement", ["--data", "nope.pkl"], cwd=tmp_path)
    assert_one_error_line(proc.returncode, proc.stdout, proc.stderr, r"--data nope\.pkl: no such file; .*")


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--config_overrides", "n_lyr=2"],
         r"--config_overrides n_lyr=2: key n_lyr isn't in the original config dict; give key=value pairs, "
         r"comma-separated, of the GPT2Config keys \(e\.g\. n_layer, n_embd, n_head\)"),
        (["--seq_len", "4096"],
         r"--seq_len 4096: over the 1024 positions of --model gpt2; lower it, or widen the table with "
         r"--config_overrides n_positions=4096"),
        (["--model", "gpt-neo-125m", "--seq_len", "4096"],
         r"--seq_len 4096: over the 2048 positions of --model gpt-neo-125m; lower it, or widen the table with "
         r"--config_overrides max_position_embeddings=4096"),
        (["--json_out", "{tmp}/afile/s.json"], r"--json_out {tmp}/afile/s\.json: {tmp}/afile is a file, not a folder; .*"),
    ],
)  # fmt: skip
def test_memory_switches_refuses_bad_input_before_any_work(flags, error, tmp_path, capsys, no_work):
    from bench.memory_switches import main
    from domainlm.errors import run_cli

    (tmp_path / "afile").write_text("")
    status = run_cli(main, [f.format(tmp=tmp_path) for f in flags])
    assert_one_error_line(status, *capsys.readouterr(), error.format(tmp=re.escape(str(tmp_path))))


def test_model_config_keeps_or_widens_the_position_table():
    from bench.models import model_config, widened_positions

    # a named size keeps its own table; an explicit override may widen it, and then the length fits
    assert model_config("gpt2", 1, 256, widen=False).n_positions == 1024
    config = model_config("gpt2", 1, 2048, "n_positions=2048", widen=False, length_flag="--seq_len")
    assert config.n_positions == 2048
    # train_throughput widens the table to the block (docs/benchmarks.md runs tiny at 2048) and says so
    config = model_config("tiny", 1, 2048)
    assert config.n_positions == 2048 and widened_positions("tiny", config) == 1024
    assert widened_positions("tiny", model_config("tiny", 1, 1024)) is None
    # every named GPT-Neo size builds (its layer pattern lists num_layers layers)
    for name in ("gpt-neo-125m", "gpt-neo-1.3b", "gpt-neo-2.7b"):
        config = model_config(name, 1, 1024)
        assert len(config.attention_layers) == config.num_layers


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--json_out", "{tmp}/afile/x.json"], r"--json_out {tmp}/afile/x\.json: {tmp}/afile is a file, not a folder; .*"),
        (["--json_out", "{tmp}"], r"--json_out {tmp}: use a \.json file name"),
        (["--model", "gpt3"], r"--model gpt3: unknown; choose from tiny, gpt2, .*"),
        (["--config_overrides", "n_layer"], r"--config_overrides n_layer: .*; give key=value pairs, comma-separated, .*"),
        (["--data", "{tmp}/nope.csv"], r"--data {tmp}/nope\.csv: no such file; give a \.pkl or \.csv file of postings"),
        (["--tokenizer", "{tmp}/nope"], r"--tokenizer {tmp}/nope: no such folder; make one with create_tokenizer\.py.*"),
        (["--vocab_size", "10"], r"--vocab_size 10: must be at least 258 .*"),
        (["--block_size", "2048", "--config_overrides", "n_positions=1024"],
         r"--block_size 2048: over the 1024 positions of --model tiny with --config_overrides n_positions=1024; .*"),
    ],
)  # fmt: skip
def test_train_throughput_refuses_bad_input_before_any_work(flags, error, postings_csv, tmp_path, capsys, no_work):
    from bench.train_throughput import main
    from domainlm.errors import run_cli

    (tmp_path / "afile").write_text("")
    status = run_cli(main, ["--data", str(postings_csv), *(f.format(tmp=tmp_path) for f in flags)])
    assert_one_error_line(status, *capsys.readouterr(), error.format(tmp=re.escape(str(tmp_path))))


def test_data_throughput_refuses_bad_input_before_any_work(tmp_path, capsys, no_work):
    from bench.data_throughput import main
    from domainlm.errors import run_cli

    (tmp_path / "afile").write_text("")
    for flags, error in [
        (["--json_out", f"{tmp_path}/afile/d.json"], r"--json_out .*/afile/d\.json: .*/afile is a file, not a folder; .*"),
        (["--data", str(tmp_path)], r"--data .* is a folder; give a \.pkl or \.csv file of postings"),
    ]:  # fmt: skip
        assert_one_error_line(run_cli(main, flags), *capsys.readouterr(), error)


def test_train_throughput_does_not_advise_a_flag_it_lacks(postings_csv, tmp_path, caplog, capsys):
    """Rows over the block are dropped, as training drops them; the loader's advice names run_clm.py's
    --overlong, which the benchmark does not have: the output says what the benchmark does instead."""
    from bench.train_throughput import main

    argv = ["--data", str(postings_csv), "--config_overrides", TINY_MODEL, "--vocab_size", "400",
            "--block_size", "208", "--batch_size", "2", "--steps", "1", "--modes", "packed"]  # fmt: skip
    with caplog.at_level("WARNING"):
        assert main(argv) == 0
    printed = caplog.text + "".join(capsys.readouterr())
    assert "--overlong" not in printed
    assert re.search(r"dropped \d+ of 40 rows longer than 208 tokens \(the benchmark leaves them out, as training "
                     r"does by default; raise --block_size to keep them\)", printed), printed  # fmt: skip
    assert re.search(r"corpus: \d+ records from postings\.csv \(\d+ over 208 tokens dropped\)", printed)
