"""Evaluation metrics on hand-made texts with known answers, perplexity, and the whole evaluation run."""

import json
import math
import re

import pytest
from conftest import forbid, write_text_csv
from memorised import PLAIN, ROWS, memorised_model_dir

from domainlm.errors import UserError
from domainlm.evaluation import (
    body_of,
    distinct_n,
    keyword_coverage,
    keyword_hits,
    perplexity_of,
    repeated_ngram_rate,
    summarise,
    words,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TEXT = "We use SQL daily.\nCare\n  planning matters; NoSQL is not Python3. Hands on C++ work, a/b testing."


def test_keyword_matching_rule():
    hits = keyword_hits("sql, Care Planning, python, hands-on, c++, a/b testing, nosql, testing a", TEXT)
    assert hits == {
        "sql": True,  # case-insensitive, whole word (the 'SQL' of 'NoSQL' would not count alone)
        "Care Planning": True,  # a line break and extra spaces between the words still match
        "python": False,  # 'Python3' is a longer word
        "hands-on": False,  # punctuation must match: 'Hands on'
        "c++": True,
        "a/b testing": True,
        "nosql": True,
        "testing a": False,  # phrases keep their order
    }
    assert keyword_hits(["nurse"], "Our nurses rotate.") == {"nurse": False}  # no plurals, no stemming
    assert keyword_coverage("sql, python, c++, hands-on", TEXT) == 0.5
    assert keyword_coverage("SQL,sql, Sql", TEXT) == 1.0  # duplicates count once, as in the prompt
    assert keyword_coverage("", TEXT) is None and keyword_coverage(None, TEXT) is None


def test_only_the_body_after_a_generated_separator_is_scored():
    assert body_of("Bake bread.") == "Bake bread."
    assert body_of("bread, oven<|SEP|>Knead daily.") == "Knead daily."  # its own keyword list is left out
    assert keyword_coverage("bread, oven", body_of("bread, oven<|SEP|>Bake bread.")) == 0.5


def test_words_distinct_n_and_repeated_ngram_rate():
    assert words("The cat's hat-trick, 2024!") == ["the", "cat", "s", "hat", "trick", "2024"]
    texts = ["the cat the cat", "A dog"]
    assert distinct_n(texts, 1) == 4 / 6  # the, cat, a, dog out of 6 words
    assert distinct_n(texts, 2) == 3 / 4  # (the cat) twice, (cat the), (a dog); none across the two texts
    assert distinct_n(["one"], 2) is None
    assert repeated_ngram_rate("a b c d a b c d") == 1 - 4 / 5  # 5 four-grams, abcd twice
    assert repeated_ngram_rate("a b c d e") == 0.0
    assert repeated_ngram_rate("go go go go go go", n=1) == 1 - 1 / 6
    assert repeated_ngram_rate("too short") is None


def test_summarise_one_condition():
    m = summarise(["sql and python", "nothing here at all", "x"], ["sql, python", "sql, java", ""], [True, False, True])
    assert m["keyword_coverage_per_sample"] == [1.0, 0.0, None]
    assert (m["keyword_coverage"], m["keyword_coverage_median"]) == (0.5, 0.5)  # the keyword-less text is left out
    assert m["words"] == (3 + 4 + 1) / 3 and m["stopped_at_eos"] == 2 / 3
    assert m["distinct_1"] == 1.0 and m["distinct_2"] == 1.0 and m["repeated_4gram_rate"] == 0.0


def test_perplexity_is_token_weighted_over_records(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["Baker<|SEP|>bread<|SEP|>Bake bread.", "Van Driver<|SEP|>van, routes<|SEP|>Drive the van on set routes."]
    losses, counts = [], []
    for t in texts:  # the reference: the model's own mean loss on tokens + eos, one text at a time
        ids = torch.tensor([tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]])
        with torch.no_grad():
            losses.append(model(input_ids=ids, labels=ids).loss.item())
        counts.append(ids.shape[1] - 1)
    expected = math.exp(sum(loss * n for loss, n in zip(losses, counts, strict=True)) / sum(counts))
    assert perplexity_of(model, tok, texts, batch_size=2) == pytest.approx(expected, rel=1e-5)
    assert perplexity_of(model, tok, texts[:1]) == pytest.approx(math.exp(losses[0]), rel=1e-5)


@pytest.mark.parametrize("seed", [7, None])
def test_base_model_init_rebuilds_the_weights_training_started_from(tmp_path, bpe_tokenizer_dir, records_dir, seed):
    """A run from scratch at learning rate 0 saves the weights it started from; ``init`` must rebuild them
    exactly: the run's seed (recorded in all_results.json, else the Trainer's 42) and its padded rows."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from domainlm.evaluation import base_model
    from domainlm.train import main

    out = tmp_path / "out"
    main(["--model_type", "gpt2", "--config_overrides", "n_layer=2,n_embd=32,n_head=2,n_positions=256",
          "--tokenizer_name", str(bpe_tokenizer_dir), "--pad_vocab_to_multiple_of", "64",
          "--train_file", str(records_dir / "train.csv"), "--do_train", "--max_steps", "1", "--learning_rate", "0",
          "--per_device_train_batch_size", "4", "--output_dir", str(out), "--report_to", "none",
          "--save_strategy", "no", "--disable_tqdm", "true", *(["--seed", str(seed)] if seed else [])])  # fmt: skip
    results = json.loads((out / "all_results.json").read_text())
    assert results["seed"] == (seed or 42)
    if seed is None:  # a folder from before the seed was recorded: the Trainer's default
        del results["seed"]
        (out / "all_results.json").write_text(json.dumps(results))
    tok = AutoTokenizer.from_pretrained(out)
    started = load_file(out / "model.safetensors")
    assert started["transformer.wte.weight"].shape[0] == 512 > len(tok)  # 501 tokens, padded to a multiple of 64
    model, what = base_model("init", out, tok)
    rebuilt = model.state_dict()
    assert what == f"the same architecture, freshly initialised with seed {seed or 42} (`--base_model init`)"
    assert [k for k in started if not torch.equal(started[k], rebuilt[k])] == []


def test_base_model_init_of_a_fine_tuned_run_is_the_model_it_started_from(tmp_path, tiny_model_dir, records_dir):
    """``init`` (the default) on a run from a model compared it with a fresh initialisation and printed that
    as the perplexity before fine-tuning; the weights that run started from are the model's own."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from domainlm.evaluation import validation_texts
    from domainlm.tables import read_table
    from domainlm.train import main
    from evaluate_model import main as evaluate

    flags = ["--train_file", str(records_dir / "train.csv"), "--do_train", "--max_steps", "3", "--learning_rate",
             "1e-2", "--per_device_train_batch_size", "4", "--report_to", "none", "--save_strategy", "no",
             "--disable_tqdm", "true"]  # fmt: skip
    first, second = tmp_path / "first", tmp_path / "second"
    main(["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(first), *flags])
    main(["--model_name_or_path", str(first), "--output_dir", str(second), *flags])
    assert json.loads((second / "all_results.json").read_text())["model_name_or_path"] == str(first)
    results = evaluate(["--model_dir", str(second), "--validation_file", str(records_dir / "validation.csv"),
                        "--output_dir", str(tmp_path / "eval"), "--num_prompts", "1", "--max_new_tokens", "2",
                        "--quiet"])  # fmt: skip
    texts = validation_texts(read_table(records_dir / "validation.csv"))
    before = AutoModelForCausalLM.from_pretrained(first).eval()
    assert results["perplexity"]["base_model"] == f"`{first}`"
    assert results["perplexity"]["before"] == perplexity_of(before, AutoTokenizer.from_pretrained(second), texts)
    assert "before fine-tuning: `" + str(first) + "`" in (tmp_path / "eval" / "report.md").read_text()
    first.rename(tmp_path / "moved")  # the starting model is not here any more: said, not replaced by a random one
    with pytest.raises(UserError) as err:
        evaluate(["--model_dir", str(second), "--validation_file", str(records_dir / "validation.csv"),
                  "--output_dir", str(tmp_path / "eval2"), "--quiet"])  # fmt: skip
    assert str(err.value).startswith(
        f"--base_model init: {second} was fine-tuned from {first} (its all_results.json), which cannot be loaded here ("
    )
    assert str(err.value).endswith("); pass that model's folder or hub name with --base_model, or none")


@pytest.fixture(scope="module")
def memorised_dir(tmp_path_factory, bpe_tokenizer_dir):
    import shutil

    # a copy: the files written below must not reach other modules that share the memorised folder
    out = tmp_path_factory.mktemp("memorised_eval") / "model"
    shutil.copytree(memorised_model_dir(tmp_path_factory, bpe_tokenizer_dir), out)
    log = [{"loss": 5.0, "step": 10, "epoch": 0.5}, {"eval_loss": 4.0, "eval_perplexity": 54.6, "step": 20, "epoch": 1.0},
           {"loss": 3.0, "step": 20, "epoch": 1.0}, {"eval_loss": 4.0, "eval_perplexity": 54.6, "step": 20, "epoch": 1.0}]  # fmt: skip
    (out / "trainer_state.json").write_text(json.dumps({"log_history": log}))
    (out / "all_results.json").write_text(json.dumps({"eval_before_perplexity": 4321.0, "eval_perplexity": 54.6}))
    return out


def test_evaluation_run_writes_results_samples_and_report(memorised_dir, tmp_path, capsys):
    from evaluate_model import main

    # two records the model knows, one without keywords (skipped), like prepare_jobs' validation.csv
    write_text_csv(tmp_path / "validation.csv", [{"text": ROWS[0]}, {"text": "Cook<|SEP|><|SEP|>Cook."},
                                                 {"text": ROWS[1]}])  # fmt: skip
    results = main(["--model_dir", str(memorised_dir), "--validation_file", str(tmp_path / "validation.csv"),
                    "--output_dir", str(tmp_path / "eval"), "--strategy", "greedy", "--max_new_tokens", "30",
                    "--quiet"])  # fmt: skip
    conds = results["conditions"]
    assert (results["prompts"], results["skipped_without_keywords"]) == (2, 1)
    assert conds["conditioned"]["keyword_coverage"] == 1.0  # memorised: the bodies come back word for word
    assert conds["conditioned"]["stopped_at_eos"] == 1.0
    assert conds["reference"]["keyword_coverage"] == 1.0 and conds["reference"]["words"] == (6 + 6) / 2
    title_only = [s for s in map(json.loads, (tmp_path / "eval" / "eval_samples.jsonl").read_text().splitlines())
                  if s["condition"] == "title_only"]  # fmt: skip
    per_sample = [sum(s["keyword_hits"].values()) / len(s["keyword_hits"]) for s in title_only]
    assert conds["title_only"]["keyword_coverage_per_sample"] == pytest.approx(per_sample)
    assert conds["title_only"]["keyword_coverage"] == pytest.approx(sum(per_sample) / 2)
    ppl = results["perplexity"]
    assert ppl["texts"] == 3 and ppl["after"] < 5 and ppl["before"] > 100 and ppl["training_eval"] == 54.6
    assert ppl["training_eval_before"] == 4321.0
    out = tmp_path / "eval"
    assert json.loads((out / "eval_results.json").read_text())["conditions"]["conditioned"]["keyword_coverage"] == 1.0
    samples = [json.loads(line) for line in (out / "eval_samples.jsonl").read_text().splitlines()]
    assert [(s["condition"], s["title"], s["seed"]) for s in samples] == [
        ("conditioned", "Baker", 0), ("conditioned", "Van Driver", 1),
        ("title_only", "Baker", 0), ("title_only", "Van Driver", 1)]  # fmt: skip
    assert samples[0]["prompt"] == "Baker<|SEP|>bread, oven<|SEP|>" and samples[2]["prompt"] == "Baker<|SEP|><|SEP|>"
    assert samples[0]["generated"] == "Bake bread daily.\nClean the oven."
    assert samples[0]["keyword_hits"] == {"bread": True, "oven": True}
    report = (out / "report.md").read_text()
    assert "![Training and evaluation loss over steps](loss.png)" in report
    assert "keyword_coverage.png" in report
    for png in ("loss.png", "keyword_coverage.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    use = results["keyword_use"]
    assert use["bodies"] == 2 and use["own"] < use["other"]
    assert "| title + its own keywords |" in report
    printed = capsys.readouterr().out
    assert "keyword coverage over 2 prompts: with keywords 100.0%" in printed
    assert f"real bodies' loss per token after their own keywords {use['own']:.4f}" in printed


def test_quiet_loads_the_base_model_without_a_progress_bar(memorised_dir, tmp_path, capfd):
    """--quiet: no "Loading weights" bar for the --base_model folder either (launch.sh passes --quiet)."""
    from transformers.utils import logging as hf_logging

    from evaluate_model import main

    write_text_csv(tmp_path / "validation.csv", [{"text": ROWS[0]}])
    flags = ["--model_dir", str(memorised_dir), "--validation_file", str(tmp_path / "validation.csv"),
             "--output_dir", str(tmp_path / "eval"), "--strategy", "greedy", "--max_new_tokens", "3",
             "--base_model", str(memorised_dir)]  # fmt: skip
    capfd.readouterr()
    main([*flags, "--quiet"])
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # as it was
    main(flags)
    assert "Loading weights" in capfd.readouterr().err  # the bar this test looks for


def test_evaluation_needs_keywords(memorised_dir, tmp_path):
    from evaluate_model import main

    write_text_csv(tmp_path / "validation.csv", [{"text": "Cook<|SEP|><|SEP|>Cook."}])
    with pytest.raises(UserError, match=r"validation\.csv: no row has keywords"):
        main(["--model_dir", str(memorised_dir), "--validation_file", str(tmp_path / "validation.csv")])


def test_plain_text_is_continued_from_each_texts_opening(tmp_path_factory, bpe_tokenizer_dir, tmp_path, capsys):
    # text2csv.py's validation.csv (poems, jokes, any language) has no keywords: each text is continued from
    # its first tokens, and a model that memorised the texts writes exactly their rest, then stops
    from transformers import AutoTokenizer

    from domainlm.evaluation import openings
    from evaluate_model import main

    model_dir = memorised_model_dir(tmp_path_factory, bpe_tokenizer_dir, PLAIN)
    tok = AutoTokenizer.from_pretrained(model_dir)
    write_text_csv(tmp_path / "validation.csv", [{"text": t} for t in [*PLAIN, "a"]])  # "a": one token, skipped
    opens = openings([*PLAIN, "a"], tok)
    assert [o.prompt + o.reference for o in opens] == PLAIN  # cut at the end of a word
    assert [o.prompt for o in opens] == ["The night train crossed", "Lamps burned on the far"]
    # no spaces, and characters the tokenizer spells as 3 byte tokens: 16 tokens would cut the sixth
    [cjk] = openings(["猫喜欢鱼。狗喜欢骨头。"], tok)
    assert (cjk.prompt, cjk.reference) == ("猫喜欢鱼。", "狗喜欢骨头。")
    results = main(["--model_dir", str(model_dir), "--validation_file", str(tmp_path / "validation.csv"),
                    "--output_dir", str(tmp_path / "eval"), "--strategy", "greedy", "--max_new_tokens", "30",
                    "--quiet"])  # fmt: skip
    assert (results["kind"], results["prompts"], results["skipped_too_short"]) == ("plain_text", 2, 1)
    cont, ref = results["conditions"]["continued"], results["conditions"]["reference"]
    assert cont == {**ref, "stopped_at_eos": 1.0}  # word for word the real rest
    assert ref["words"] == sum(len(words(o.reference)) for o in opens) / 2 and ref["stopped_at_eos"] is None
    samples = [json.loads(line) for line in (tmp_path / "eval" / "eval_samples.jsonl").read_text().splitlines()]
    assert [(s["prompt"], s["generated"], s["reference"]) for s in samples] == [
        (o.prompt, o.reference, o.reference) for o in opens
    ]
    ppl = results["perplexity"]
    assert ppl["texts"] == 3 and ppl["before"] > 100 and "training_eval" not in ppl
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "Plain text: each of 2 validation texts from" in report and "; 1 text of one token skipped." in report
    assert f"| generated continuations | {cont['words']:,.0f} |" in report
    assert "| the real rest of the texts |" in report and "keyword" not in report.lower()
    assert not (tmp_path / "eval" / "keyword_coverage.png").exists()
    captured = capsys.readouterr()
    out = captured.out
    assert "Loading weights" not in captured.err  # --quiet: no progress bar, transformers' own included
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()  # and put back afterwards
    assert "2 validation texts continued from their openings" in out and "100% stopped at end-of-text" in out


def test_body_loss_is_the_mean_over_body_tokens_and_end_of_text(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from domainlm.evaluation import body_loss

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    pairs = [("Baker<|SEP|>bread<|SEP|>", "Bake bread."), ("Van Driver<|SEP|><|SEP|>", "Drive the van on set routes.")]
    by_hand_sum, by_hand_count = 0.0, 0
    for prompt, body in pairs:
        head = tok(prompt, add_special_tokens=False)["input_ids"]
        tail = tok(body, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = torch.tensor([head + tail])
        with torch.no_grad():
            logp = model(ids).logits[0].log_softmax(-1)
        by_hand_sum -= sum(logp[len(head) - 1 + j, t].item() for j, t in enumerate(tail))
        by_hand_count += len(tail)
    # batched with right padding, one batch and one pair per batch: the same token-weighted mean
    for batch_size in (2, 1):
        assert body_loss(model, tok, pairs, batch_size=batch_size) == pytest.approx(by_hand_sum / by_hand_count, 1e-5)


def test_a_body_over_the_context_is_cut_without_the_tokenizer_s_warning(tiny_model_dir, caplog, monkeypatch):
    import logging

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from domainlm.evaluation import body_loss

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok.model_max_length = context = model.config.n_positions
    body = "Drive the van on set routes. " * context  # several times the context in tokens
    monkeypatch.setattr(logging.getLogger("transformers"), "propagate", True)  # its warnings reach caplog
    with caplog.at_level(logging.WARNING):
        cut = body_loss(model, tok, [("Van Driver<|SEP|><|SEP|>", body)])
    ids = tok("Van Driver<|SEP|><|SEP|>" + body, add_special_tokens=False, verbose=False)["input_ids"][:context]
    n_head = len(tok("Van Driver<|SEP|><|SEP|>", add_special_tokens=False)["input_ids"])
    assert cut == pytest.approx(body_loss(model, tok, [("Van Driver<|SEP|><|SEP|>", tok.decode(ids[n_head:]))]), 1e-3)
    assert [m for m in caplog.messages if "longer than the specified maximum" in m] == []


def test_keyword_use_tells_a_model_that_reads_its_keywords(memorised_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from domainlm.evaluation import EvalPrompt, keyword_use

    tok = AutoTokenizer.from_pretrained(memorised_dir)
    model = AutoModelForCausalLM.from_pretrained(memorised_dir).eval()
    prompts = [EvalPrompt("Baker", "bread, oven", "Bake bread daily.\nClean the oven."),
               EvalPrompt("Van Driver", "routes, van", "Drive the van on set routes.")]  # fmt: skip
    use = keyword_use(model, tok, prompts)
    # memorised records: with their own keywords the bodies are nearly certain; swapped keywords hurt
    assert use["bodies"] == 2 and use["own"] < 0.1 and use["own"] < use["none"] and use["own"] < use["other"]
    same = [EvalPrompt("Baker", "bread", "Bake bread."), EvalPrompt("Cook", "bread", "Cook.")]
    assert keyword_use(model, tok, same) is None  # one keyword list: nothing to swap in
    assert keyword_use(model, tok, [EvalPrompt("Baker", "bread", None), prompts[1]]) is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--num_prompts", "0"], r"--num_prompts 0: must be at least 1"),
        (["--output_dir", "{tmp}/notes.txt"], r"--output_dir {tmp}/notes\.txt is a file; give a folder"),
        (["--base_model", "{tmp}/no/such/model"], r"--base_model {tmp}/no/such/model: no such folder"),
        (["--base_model", "{tmp}/empty"], r"--base_model {tmp}/empty: no config\.json in that folder; .*"),
        (["--base_model", "{tmp}/no_weights"], r"--base_model {tmp}/no_weights: the folder holds no weights; .*"),
        (["--base_model", "gtp2"], r"--base_model gtp2: not a local folder, and the config could not be loaded .*"),
        (
            ["--base_model", "{tmp}/damaged"],
            r"--base_model {tmp}/damaged: its config cannot be loaded \(OSError: .*\); a file of the folder is "
            r"damaged or incomplete: copy the folder again, or save it again",
        ),
    ],
)
def test_evaluation_refuses_bad_flags_before_generating(memorised_dir, tmp_path, monkeypatch, flags, message):
    import domainlm.generation
    from evaluate_model import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    forbid(monkeypatch, (domainlm.generation, "generate_batch"))
    write_text_csv(tmp_path / "validation.csv", [{"text": ROWS[0]}])
    (tmp_path / "notes.txt").write_text("notes")
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_weights").mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "no_weights" / name).write_bytes((memorised_dir / name).read_bytes())
    (tmp_path / "damaged").mkdir()  # before: a traceback from transformers
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "damaged" / name).write_bytes((memorised_dir / name).read_bytes())
    (tmp_path / "damaged" / "config.json").write_text('{"model_type": "gpt2",')
    flags = [f.format(tmp=tmp_path) for f in flags]
    with pytest.raises(UserError) as err:
        main(["--model_dir", str(memorised_dir), "--validation_file", str(tmp_path / "validation.csv"), *flags])
    assert re.fullmatch(message.format(tmp=re.escape(str(tmp_path))), str(err.value)), str(err.value)
    assert not (tmp_path / "notes.txt").is_dir() and (tmp_path / "notes.txt").read_text() == "notes"


def _eval_folder(memorised_dir, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(memorised_dir, model)
    write_text_csv(tmp_path / "validation.csv", [{"text": r} for r in ROWS])
    return model, ["--model_dir", str(model), "--validation_file", str(tmp_path / "validation.csv"), "--quiet",
                   "--strategy", "greedy", "--max_new_tokens", "4", "--base_model", "none"]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "flags", "message"),
    [
        ("trainer_state.json", '{"log_history": [', [], r"{f}: not valid JSON \(.*\); was training interrupted .*"),
        ("trainer_state.json", "[1]", [], r"{f}: expected a JSON object, found a list; is it the file training wrote\?"),
        ("trainer_state.json", '{"log_history": [1]}', [], r"{f}: its log_history is not a list of objects; .*"),
        ("all_results.json", '{"seed": 1,', [], r"{f}: not valid JSON \(.*\); was training interrupted .*"),
        ("all_results.json", "[1]", ["--base_model", "init"], r"{f}: expected a JSON object, found a list; .*"),
        ("all_results.json", '{"seed": "7"}', ["--base_model", "init"],
         r"{f}: its seed '7' is not a whole number 0 or more; fix or remove that entry, or pass --base_model none"),
    ],
    ids=["state_cut", "state_list", "state_history", "results_cut", "results_list", "results_seed"],
)  # fmt: skip
def test_damaged_training_files_are_said_before_generating_and_earlier_outputs_stay(
    memorised_dir, tmp_path, monkeypatch, name, content, flags, message
):
    # before: a cut trainer_state.json was read after the generation, once eval_results.json and
    # eval_samples.jsonl had replaced the earlier ones; a list or a text seed gave a traceback
    import domainlm.generation
    from evaluate_model import main

    model, args = _eval_folder(memorised_dir, tmp_path)
    (model / name).write_text(content)
    out = tmp_path / "eval"
    out.mkdir()
    (out / "eval_results.json").write_text("earlier\n")
    forbid(monkeypatch, (domainlm.generation, "generate_batch"))
    with pytest.raises(UserError) as err:
        main([*args, "--output_dir", str(out), *flags])
    assert re.fullmatch(message.format(f=re.escape(str(model / name))), str(err.value)), str(err.value)
    assert [p.name for p in out.iterdir()] == ["eval_results.json"]
    assert (out / "eval_results.json").read_text() == "earlier\n"


def test_the_output_files_are_written_all_or_none(memorised_dir, tmp_path, monkeypatch):
    # before: eval_results.json and eval_samples.jsonl were written one by one, so a failure in the report
    # (or Ctrl-C) left the earlier report next to new results
    import domainlm.report
    from evaluate_model import main

    model, args = _eval_folder(memorised_dir, tmp_path)
    out = tmp_path / "eval"
    out.mkdir()
    earlier = {name: f"earlier {name}\n" for name in ("eval_results.json", "eval_samples.jsonl", "report.md")}
    for name, text in earlier.items():
        (out / name).write_text(text)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(domainlm.report, "write_report", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main([*args, "--output_dir", str(out)])
    assert {p.name: p.read_text() for p in out.iterdir()} == earlier  # no staging folder left either
    monkeypatch.undo()
    main([*args, "--output_dir", str(tmp_path / "new" / "eval")])
    assert sorted(p.name for p in (tmp_path / "new" / "eval").iterdir()) == [
        "eval_results.json", "eval_samples.jsonl", "keyword_coverage.png", "loss.png", "report.md"]  # fmt: skip


def test_an_output_folder_that_cannot_be_written_is_said_before_generating(memorised_dir, tmp_path, monkeypatch):
    import tempfile

    import domainlm.generation
    from evaluate_model import main

    _, args = _eval_folder(memorised_dir, tmp_path)
    forbid(monkeypatch, (domainlm.generation, "generate_batch"))

    def read_only(*a, **k):  # a read-only folder (root, who runs the tests here, writes anywhere)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    with pytest.raises(UserError) as err:
        main([*args, "--output_dir", str(tmp_path / "eval")])
    assert str(err.value) == f"--output_dir {tmp_path / 'eval'}: cannot write there (Permission denied)"


def test_a_validation_file_that_is_an_output_or_not_text_is_refused(memorised_dir, tmp_path):
    from domainlm.tables import write_jsonl
    from evaluate_model import main

    _, args = _eval_folder(memorised_dir, tmp_path)
    out = tmp_path / "eval"
    out.mkdir()
    write_jsonl(out / "eval_samples.jsonl", [{"text": r} for r in ROWS])
    before = (out / "eval_samples.jsonl").read_bytes()
    with pytest.raises(
        UserError, match=r"eval_samples\.jsonl is both an input and an output; choose another --output_dir"
    ):
        main([*args, "--validation_file", str(out / "eval_samples.jsonl"), "--output_dir", str(out)])
    assert (out / "eval_samples.jsonl").read_bytes() == before
    write_jsonl(tmp_path / "v.jsonl", [{"text": "The night train crossed the river."}, {"text": ["a", "list"]}])
    with pytest.raises(
        UserError, match=r"v\.jsonl: the row at line 2: its 'text' is list .*, not text; make it a string"
    ):
        main([*args, "--validation_file", str(tmp_path / "v.jsonl"), "--output_dir", str(out)])


def test_a_validation_record_whose_prompt_fills_the_context_is_named(memorised_dir, tmp_path):
    from domainlm.tables import write_csv
    from evaluate_model import main

    _, args = _eval_folder(memorised_dir, tmp_path)
    many = ", ".join(f"skill{i}" for i in range(60))
    write_csv(tmp_path / "v.csv", [{"title": "Baker", "keywords": "bread"}, {"title": "Cook", "keywords": many}],
              ["title", "keywords"])  # fmt: skip
    with pytest.raises(UserError) as err:
        main([*args, "--validation_file", str(tmp_path / "v.csv"), "--output_dir", str(tmp_path / "eval")])
    assert re.fullmatch(
        rf"{re.escape(str(tmp_path / 'v.csv'))}: the row at line 3: its prompt \(title and keywords\) is \d+ "
        r"tokens, the model's whole context of 64; shorten them, or leave the row out",
        str(err.value),
    ), str(err.value)
    assert not (tmp_path / "eval").exists()


def test_a_base_model_with_another_tokenizer_is_refused(memorised_dir, tmp_path, monkeypatch):
    # before: a smaller vocabulary gave an IndexError traceback after the generation; one of the same size
    # gave a 'perplexity before' of ids that mean other tokens to it
    import torch
    from conftest import record_rows
    from transformers import GPT2Config, GPT2LMHeadModel

    import domainlm.generation
    from domainlm.evaluation import base_model
    from domainlm.tokenizer import train_bpe_tokenizer
    from evaluate_model import main

    tok = train_bpe_tokenizer([r["text"][::-1] for r in record_rows(60, 60)], vocab_size=300, model_max_length=64)
    torch.manual_seed(0)
    other = tmp_path / "other"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, n_positions=64, vocab_size=len(tok))).save_pretrained(
        other
    )
    tok.save_pretrained(other)
    model, args = _eval_folder(memorised_dir, tmp_path)
    forbid(monkeypatch, (domainlm.generation, "generate_batch"))
    with pytest.raises(UserError) as err:
        main([*args, "--base_model", str(other), "--output_dir", str(tmp_path / "eval")])
    assert re.fullmatch(
        rf"--base_model {re.escape(str(other))}: its tokenizer is not the one of --model_dir {re.escape(str(model))} "
        r"\(ids differ for \d+ of its 301 tokens, e\.g\. .*\), so its perplexity would mean nothing; give the model "
        r"training started from \(init finds it in all_results\.json\), or none",
        str(err.value),
    ), str(err.value)
    assert not (tmp_path / "eval").exists()
    # the model a run started from (all_results.json) may have had another tokenizer (--tokenizer_name): it
    # gets a row for every id of the fine-tuned one, as training gave it, rather than an IndexError
    from transformers import AutoTokenizer

    ours = AutoTokenizer.from_pretrained(model)
    before, _ = base_model(str(other), model, ours)
    assert before.get_input_embeddings().weight.shape[0] >= len(ours) > 301


def test_a_plot_that_the_new_evaluation_does_not_draw_goes_with_the_earlier_one(memorised_dir, tmp_path):
    """The folder's trainer_state.json is gone: the earlier loss curve would stay beside a report without it."""
    from evaluate_model import main

    model, args = _eval_folder(memorised_dir, tmp_path)
    out = tmp_path / "eval"
    main([*args, "--output_dir", str(out)])
    assert (out / "loss.png").is_file()
    (out / "notes.md").write_text("mine\n")
    (model / "trainer_state.json").unlink()
    main([*args, "--output_dir", str(out)])
    assert sorted(p.name for p in out.iterdir()) == [
        "eval_results.json", "eval_samples.jsonl", "keyword_coverage.png", "notes.md", "report.md"]  # fmt: skip
    assert "loss.png" not in (out / "report.md").read_text()
