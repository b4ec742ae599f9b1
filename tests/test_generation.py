"""Batched generation: prompts from the template, left padding, seeds, clipping, and the saved folder."""

import json
import logging
import re

import pytest
from conftest import write_text_csv
from memorised import PLAIN, PROMPTS, RECORDS, ROWS, memorised_model_dir

from domainlm.errors import UserError
from domainlm.generation import GenerationSettings, generate_batch, load_model_dir, plan_batches, prompts_from_file
from domainlm.tables import write_csv, write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def memorised_dir(tmp_path_factory, bpe_tokenizer_dir):
    return memorised_model_dir(tmp_path_factory, bpe_tokenizer_dir)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model_dir(tiny_model_dir, device="cpu")


MIXED = ["Baker<|SEP|>bread<|SEP|>", "Senior Site Reliability Engineer<|SEP|>kubernetes, on-call, terraform<|SEP|>",
         "Nurse<|SEP|><|SEP|>", "Warehouse Operative – Night Shift<|SEP|>forklift<|SEP|>We"]  # fmt: skip


def test_prompts_from_files_use_the_training_template(tmp_path):
    write_csv(tmp_path / "v.csv", [{"title": "  Data\nScientist ", "keywords": "python,SQL, python", "text": ""},
                                   {"title": "Baker", "keywords": "", "text": ROWS[0]}], ["title", "keywords", "text"])  # fmt: skip
    assert [(p.prompt, p.title, p.keywords, p.reference) for p in prompts_from_file(tmp_path / "v.csv")] == [
        ("Data Scientist<|SEP|>python, SQL<|SEP|>", "  Data\nScientist ", "python, SQL", None),
        ("Baker<|SEP|><|SEP|>", "Baker", "", "Bake bread daily.\nClean the oven."),
    ]
    write_text_csv(tmp_path / "records.csv", [{"text": ROWS[1]}])  # a training file works as a prompts file
    [p] = prompts_from_file(tmp_path / "records.csv")
    assert (p.prompt, p.keywords, p.reference) == (PROMPTS[1], "routes, van", "Drive the van on set routes.")
    write_jsonl(tmp_path / "p.jsonl", [{"prompt": "The night"}, {"prompt": "Lamps burned"}])
    assert [p.prompt for p in prompts_from_file(tmp_path / "p.jsonl", limit=1)] == ["The night"]
    write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "x"}, {"body": "no prompt here"}])
    with pytest.raises(UserError, match=r"bad.jsonl: the row at line 2: needs a 'title'"):
        prompts_from_file(tmp_path / "bad.jsonl")
    write_text_csv(tmp_path / "plain.csv", [{"text": "The night train crossed"}])  # text2csv.py's validation.csv
    with pytest.raises(
        UserError, match=r"plain.csv: the row at line 2: its 'text' is plain text, not a record .*'prompt' column"
    ):
        prompts_from_file(tmp_path / "plain.csv")


def test_settings_fill_strategy_defaults_and_refuse_flags_that_do_nothing():
    s = GenerationSettings()
    assert (s.strategy, s.top_k, s.top_p, s.temperature, s.num_beams) == ("top_k_top_p", 50, 0.95, 1.0, None)
    assert GenerationSettings(strategy="top_p").top_k is None
    assert GenerationSettings(strategy="beam").num_beams == 4
    with pytest.raises(UserError, match="--top_k does nothing with --strategy greedy"):
        GenerationSettings(strategy="greedy", top_k=5)
    with pytest.raises(UserError, match="--temperature does nothing with --strategy beam"):
        GenerationSettings(strategy="beam", temperature=0.7)
    with pytest.raises(UserError, match="--num_return_sequences 3 exceeds --num_beams 2"):
        GenerationSettings(strategy="beam", num_beams=2, num_return_sequences=3)
    with pytest.raises(UserError, match=r"--top_p 1.5: must be in \(0, 1\]"):
        GenerationSettings(strategy="top_p", top_p=1.5)


def test_help_shows_each_default_and_the_scripts_own_max_new_tokens(monkeypatch):
    """generate.py has no --max_new_tokens (until end-of-text or a full context) and evaluate_model.py 400:
    --help says which."""
    import evaluate_model
    import generate

    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at hyphens: 'end-of-text' would read 'end- of-text'

    def help_of(script):
        return " ".join(script.make_parser().format_help().split())

    generate_help, evaluate_help = help_of(generate), help_of(evaluate_model)
    assert (
        "--max_new_tokens MAX_NEW_TOKENS longest continuation in tokens; clipped, with a warning, to fit the model's "
        "context [none given: until end-of-text or the context is full (context minus the prompt's tokens; in a batch, "
        "minus its longest prompt's)]"
    ) in generate_help
    assert "clipped, with a warning, to fit the model's context [400]" in evaluate_help
    assert "until end-of-text" not in evaluate_help
    required = ["--model_dir", "m", "--validation_file", "v.csv"]
    assert generate.make_parser().parse_args(["--model_dir", "m"]).max_new_tokens is None
    assert evaluate_model.make_parser().parse_args(required).max_new_tokens == 400
    assert evaluate_model.make_parser().parse_args([*required, "--max_new_tokens", "7"]).max_new_tokens == 7
    assert GenerationSettings().max_new_tokens is None
    assert "prompts generated together (left-padded) [16]" in generate_help and "1 = off [1.0]" in generate_help
    assert "[1.0] [" not in generate_help  # a help that names its default gets no second one
    for bad in (0, -3):
        with pytest.raises(UserError, match=rf"^--max_new_tokens {bad}: must be at least 1$"):
            GenerationSettings(max_new_tokens=bad)


def test_batches_group_by_length_and_an_overlong_prompt_is_clipped_alone(caplog):
    s = GenerationSettings(strategy="greedy", max_new_tokens=10, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="domainlm.generation"):
        plan = plan_batches([3, 10, 5, 250, 7], context=256, settings=s)
    assert plan == [([1, 4], 10), ([2, 0], 10), ([3], 6)]
    assert "prompt 4: max_new_tokens 10 clipped to 6" in caplog.text and "context of 256" in caplog.text
    with pytest.raises(UserError, match="prompt 2 is 256 tokens: the model's whole context of 256"):
        plan_batches([3, 256], context=256, settings=s)
    caplog.clear()  # several clipped: one line for all of them
    s = GenerationSettings(strategy="greedy", max_new_tokens=20, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="domainlm.generation"):
        plan = plan_batches([250, 3, *range(237, 255)], context=256, settings=s)
    assert plan[0] == ([1], 20) and plan[1] == ([0], 6) and len(plan) == 20
    assert caplog.messages == [
        "19 of 20 prompts: max_new_tokens 20 clipped to 2-19 tokens (prompts 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, ... "
        "(19 in all)), so that each prompt and its continuation fit the model's context of 256"
    ]


def test_without_max_new_tokens_each_batch_gets_the_room_its_longest_prompt_leaves(caplog):
    s = GenerationSettings(strategy="greedy", batch_size=2)
    with caplog.at_level(logging.WARNING, logger="domainlm.generation"):
        plan = plan_batches([3, 10, 5, 60, 7], context=64, settings=s)
    # sorted by length (60, 10, 7, 5, 3), two at a time: 64 - 60, 64 - 7, 64 - 3
    assert plan == [([3, 1], 4), ([4, 2], 57), ([0], 61)]
    assert plan_batches([3, 10, 63], context=64, settings=GenerationSettings(batch_size=1)) == [
        ([2], 1), ([1], 54), ([0], 61)]  # fmt: skip
    assert caplog.messages == []  # nothing asked, nothing clipped
    with pytest.raises(UserError, match="prompt 2 is 64 tokens: the model's whole context of 64"):
        plan_batches([3, 64], context=64, settings=s)


@pytest.fixture(scope="module")
def tiny64(bpe_tokenizer_dir):
    """A 2-layer GPT-2 of 64 positions that never writes end-of-text: every row runs until its limit."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(bpe_tokenizer_dir)
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=len(tok),
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    model = GPT2LMHeadModel(config).eval()
    model.generation_config.suppress_tokens = [tok.eos_token_id]  # kept by generate_batch, as a saved folder's
    return model, tok


@pytest.mark.parametrize(
    ("batch_size", "budgets"),
    [(2, [55, 26, 55, 26]), (1, [55, 26, 58, 36]), (4, [26, 26, 26, 26])],
)
def test_without_max_new_tokens_rows_fill_the_context_and_never_overflow_it(
    tiny64, batch_size, budgets, caplog, monkeypatch
):
    model, tok = tiny64
    lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in MIXED]
    assert lengths == [9, 38, 6, 28]
    shapes, original = [], model.generate

    def spy(**kwargs):
        out = original(**kwargs)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(model, "generate", spy)
    with caplog.at_level(logging.WARNING, logger="domainlm.generation"):
        outs = generate_batch(model, tok, MIXED, GenerationSettings(strategy="greedy", batch_size=batch_size),
                              progress=False)  # fmt: skip
    # batch size 2: (38, 28) get 64 - 38 = 26, (9, 6) get 64 - 9 = 55; alone, each gets 64 minus its own
    assert [g.max_new_tokens for g in outs] == budgets
    assert [g.new_tokens for g in outs] == budgets and not any(g.stopped for g in outs)
    assert all(n + g.new_tokens <= 64 for n, g in zip(lengths, outs, strict=True))
    # each batch: its longest prompt (the width of the left padding) plus the new tokens fill the context exactly
    assert shapes == [(batch_size, 64)] * (4 // batch_size)
    assert caplog.messages == []


def test_prompts_are_padded_on_the_left(tiny, monkeypatch):
    model, tok = tiny
    seen = {}
    original = model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    generate_batch(model, tok, ["Nurse<|SEP|>", "Senior Site Reliability Engineer<|SEP|>"],
                   GenerationSettings(strategy="greedy", max_new_tokens=2), progress=False)  # fmt: skip
    ids, mask = seen["input_ids"].tolist(), seen["attention_mask"].tolist()
    short = len(tok("Nurse<|SEP|>", add_special_tokens=False)["input_ids"])
    pad = len(ids[0]) - short
    assert pad > 0 and ids[1][:pad] == [tok.pad_token_id] * pad  # the shorter prompt (second) waits on the left
    assert mask[1] == [0] * pad + [1] * short and mask[0] == [1] * len(ids[0])
    assert ids[1][pad:] == tok("Nurse<|SEP|>", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(
    "settings",
    [
        GenerationSettings(strategy="greedy", max_new_tokens=12, batch_size=4),
        GenerationSettings(strategy="beam", num_beams=3, num_return_sequences=2, max_new_tokens=8, batch_size=4),
        GenerationSettings(strategy="top_k_top_p", top_k=20, temperature=1.5, max_new_tokens=12, batch_size=4,
                           repetition_penalty=1.3, no_repeat_ngram_size=2, num_return_sequences=2, seed=5),
    ],
    ids=["greedy", "beam", "sampling"],
)  # fmt: skip
def test_a_batch_gives_what_each_prompt_gives_alone(tiny, settings):
    model, tok = tiny
    batch = generate_batch(model, tok, MIXED, settings, progress=False)
    alone = [g for i, p in enumerate(MIXED) for g in generate_batch(model, tok, [p], settings, seeds=[settings.seed + i],
                                                                    progress=False)]  # fmt: skip
    n = settings.num_return_sequences
    assert [(g.index, g.return_index, g.seed) for g in batch] == [(i, r, 5 * (n == 2 and settings.sampling) + i)
                                                                 for i in range(4) for r in range(n)]  # fmt: skip
    assert [g.text for g in batch] == [g.text for g in alone]
    assert [g.new_tokens for g in batch] == [g.new_tokens for g in alone]
    if n == 2:
        assert all(batch[2 * i].text != batch[2 * i + 1].text for i in range(4))  # two different returns


def test_same_seed_same_output_other_seed_other_output(tiny):
    model, tok = tiny
    run = [generate_batch(model, tok, MIXED, GenerationSettings(max_new_tokens=16, seed=s), progress=False)
           for s in (7, 7, 8)]  # fmt: skip
    texts = [[g.text for g in r] for r in run]
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]
    assert [g.seed for g in run[2]] == [8, 9, 10, 11]


def test_a_rows_seed_reproduces_it_with_a_plain_pipeline_call(tiny_model_dir, tiny):
    from transformers import pipeline, set_seed

    model, tok = tiny
    generator = pipeline("text-generation", model=str(tiny_model_dir))
    outs = generate_batch(model, tok, MIXED, GenerationSettings(max_new_tokens=12, seed=3), progress=False)
    for g, prompt in zip(outs, MIXED, strict=True):
        set_seed(g.seed)  # the row's own generator draws exactly what the global one draws for a single prompt
        text = generator(prompt, do_sample=True, top_k=50, top_p=0.95, max_new_tokens=12, return_full_text=False)
        # the same text, but for a character cut off by max_new_tokens, which the pipeline shows as U+FFFD
        expected = text[0]["generated_text"]
        assert g.text == expected or (not g.stopped and g.text + "\ufffd" == expected)


def test_a_length_beyond_the_context_is_clipped_with_a_warning(tiny, caplog):
    model, tok = tiny  # context 256
    prompt = "Baker<|SEP|>bread<|SEP|>" + "Knead the dough and bake it. " * 17
    n = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert 200 < n < 256
    with caplog.at_level(logging.WARNING, logger="domainlm.generation"):
        [g] = generate_batch(model, tok, [prompt], GenerationSettings(strategy="greedy", max_new_tokens=500),
                             progress=False)  # fmt: skip
    assert g.max_new_tokens == 256 - n and g.new_tokens <= 256 - n
    assert f"prompt 1: max_new_tokens 500 clipped to {256 - n}" in caplog.text
    caplog.clear()  # no number asked: the same room, without a warning
    with caplog.at_level(logging.WARNING, logger="domainlm.generation"):
        [g] = generate_batch(model, tok, [prompt], GenerationSettings(strategy="greedy"), progress=False)
    assert g.max_new_tokens == 256 - n and caplog.messages == []


def test_saved_folder_in_pipeline_and_batched_returns_the_body_and_stops_at_end_of_text(memorised_dir):
    from transformers import pipeline

    generator = pipeline("text-generation", model=str(memorised_dir))  # no extra arguments
    for prompt, row in zip(PROMPTS, ROWS, strict=True):
        assert generator(prompt)[0]["generated_text"] == row  # <|SEP|> visible, nothing after end-of-text
        assert generator(prompt, return_full_text=False)[0]["generated_text"] == row[len(prompt) :]
    model, tok = load_model_dir(memorised_dir)
    outs = generate_batch(model, tok, PROMPTS, GenerationSettings(strategy="greedy", max_new_tokens=40), progress=False)
    bodies = [body for _, _, body in RECORDS]
    assert [g.text for g in outs] == bodies
    assert all(g.stopped for g in outs)
    assert [g.new_tokens for g in outs] == [len(tok(b, add_special_tokens=False)["input_ids"]) + 1 for b in bodies]


def test_generate_script_writes_jsonl_and_csv_rows_with_seed_and_settings(memorised_dir, tmp_path, capsys):
    from domainlm.tables import read_table
    from generate import main

    rows = main(["--model_dir", str(memorised_dir), "--title", "Baker", "--keywords", "bread,oven",
                 "--strategy", "greedy", "--max_new_tokens", "30", "--output", str(tmp_path / "one.jsonl")])  # fmt: skip
    assert rows[0]["generated"] == RECORDS[0][2]
    assert "=== 1. Baker<|SEP|>bread, oven<|SEP|>\nBake bread daily." in capsys.readouterr().out
    [saved] = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    assert saved == rows[0]
    assert {k: saved[k] for k in ("prompt", "title", "keywords", "seed", "stopped_at_eos", "strategy", "top_k")} == {
        "prompt": PROMPTS[0], "title": "Baker", "keywords": "bread, oven", "seed": 0, "stopped_at_eos": True,
        "strategy": "greedy", "top_k": None}  # fmt: skip

    write_text_csv(tmp_path / "validation.csv", [{"text": r} for r in ROWS])
    main(["--model_dir", str(memorised_dir), "--prompts_file", str(tmp_path / "validation.csv"), "--quiet",
          "--num_return_sequences", "2", "--seed", "3", "--max_new_tokens", "30", "--output", str(tmp_path / "out.csv")])  # fmt: skip
    table = read_table(tmp_path / "out.csv")
    assert [(r["title"], r["seed"], r["return_index"]) for r in table] == [
        ("Baker", "3", "0"), ("Baker", "3", "1"), ("Van Driver", "4", "0"), ("Van Driver", "4", "1")]  # fmt: skip
    assert [r["reference"] for r in table] == [RECORDS[0][2], RECORDS[0][2], RECORDS[1][2], RECORDS[1][2]]
    assert saved["reference"] is None  # --title: nothing to compare with
    assert saved["max_new_tokens"] == 30 and saved["new_tokens"] == 23  # 22 body tokens and end-of-text
    assert {r["strategy"] for r in table} == {"top_k_top_p"} and {r["top_p"] for r in table} == {"0.95"}
    with pytest.raises(UserError, match=r"--output out\.txt: use a \.jsonl or \.csv"):
        main(["--model_dir", str(memorised_dir), "--prompt", "x", "--output", "out.txt"])


def test_generate_script_without_max_new_tokens_writes_whole_postings(memorised_dir, tmp_path, caplog):
    from generate import main

    with caplog.at_level(logging.WARNING, logger="domainlm.generation"):
        [row] = main(["--model_dir", str(memorised_dir), "--title", "Baker", "--keywords", "bread,oven", "--quiet",
                      "--strategy", "greedy", "--output", str(tmp_path / "one.jsonl")])  # fmt: skip
    # the prompt 'Baker<|SEP|>bread, oven<|SEP|>' is 13 tokens of the model's 64: room for 51
    assert (row["max_new_tokens"], row["new_tokens"], row["stopped_at_eos"]) == (64 - 13, 23, True)
    assert row["generated"] == RECORDS[0][2] and caplog.messages == []
    assert json.loads((tmp_path / "one.jsonl").read_text())["max_new_tokens"] == 51
    # an explicit number that overflows is clipped with a warning, and the row says so
    with caplog.at_level(logging.WARNING, logger="domainlm.generation"):
        [row] = main(["--model_dir", str(memorised_dir), "--title", "Baker", "--keywords", "bread,oven", "--quiet",
                      "--strategy", "greedy", "--max_new_tokens", "60"])  # fmt: skip
    assert row["max_new_tokens"] == 51
    assert caplog.messages == [
        "prompt 1: max_new_tokens 60 clipped to 51, so that its 13 tokens and the continuation fit the model's "
        "context of 64"
    ]


def test_a_plain_text_prompts_file_is_continued_from_each_texts_opening(tmp_path_factory, bpe_tokenizer_dir, tmp_path):
    # text2csv.py's validation.csv: each text's opening is the prompt, as in evaluate_model.py
    from generate import main

    model_dir = memorised_model_dir(tmp_path_factory, bpe_tokenizer_dir, PLAIN)
    write_text_csv(tmp_path / "validation.csv", [{"text": t} for t in PLAIN])
    rows = main(["--model_dir", str(model_dir), "--prompts_file", str(tmp_path / "validation.csv"), "--quiet",
                 "--strategy", "greedy", "--max_new_tokens", "30"])  # fmt: skip
    assert [(r["prompt"], r["generated"], r["title"], r["stopped_at_eos"]) for r in rows] == [
        ("The night train crossed", " the frozen river slowly.", None, True),
        ("Lamps burned on the far", " shore until the morning came.", None, True),
    ]
    assert [r["reference"] for r in rows] == [r["generated"] for r in rows]  # memorised: word for word the rest
    rows = main(["--model_dir", str(model_dir), "--prompts_file", str(tmp_path / "validation.csv"), "--quiet",
                 "--strategy", "greedy", "--num_prompts", "1"])  # fmt: skip
    assert [r["prompt"] for r in rows] == ["The night train crossed"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--title", "Baker", "--prompt", "Bake"], r"--title and --prompt: give only one of them"),
        (["--prompts_file", "p.csv", "--title", "Baker"], r"--prompts_file and --title: give only one of them"),
        (["--prompt", "  "], r"--prompt is empty; give some text"),
        (["--title", ""], r"--title is empty; give some text"),
        (
            ["--title", "Baker<|SEP|>bread"],
            r"--title 'Baker<\|SEP\|>bread': <\|SEP\|> separates title, keywords and body; remove it",
        ),
        (
            ["--title", "Baker", "--keywords", "bread<|SEP|>"],
            r"--keywords 'bread<\|SEP\|>': <\|SEP\|> separates .*; remove it",
        ),
        (["--prompt", "Bake", "--num_prompts", "2"], r"--num_prompts counts the rows of --prompts_file; .*"),
        (["--prompt", "Bake", "--max_new_tokens", "0"], r"--max_new_tokens 0: must be at least 1"),
        (["--prompts_file", "p.csv", "--num_prompts", "0"], r"--num_prompts 0: must be at least 1"),
        (["--prompts_file", "p.csv", "--num_prompts", "-2"], r"--num_prompts -2: must be at least 1"),
        (
            ["--prompt", "Bake", "--output", "{tmp}/runs.jsonl"],
            r"--output {tmp}/runs\.jsonl is a folder; give a file name",
        ),
        (
            ["--prompt", "Bake", "--output", "{tmp}/notes.txt/out.csv"],
            r"--output {tmp}/notes\.txt/out\.csv: {tmp}/notes\.txt is a file, not a folder; give another path",
        ),
    ],
)
def test_generate_script_refuses_bad_input_before_loading_the_model(tmp_path, flags, message):
    from generate import main

    (tmp_path / "runs.jsonl").mkdir()
    (tmp_path / "notes.txt").write_text("notes")
    flags = [f.format(tmp=tmp_path) for f in flags]
    # the model folder does not exist: each refusal must come before the model is read
    with pytest.raises(UserError) as err:
        main(["--model_dir", str(tmp_path / "no_model"), *flags])
    assert re.fullmatch(message.format(tmp=re.escape(str(tmp_path))), str(err.value)), str(err.value)


def test_a_prompt_longer_than_the_context_is_refused_before_any_output(tiny, capfd, caplog, monkeypatch):
    model, tok = tiny
    context = model.config.n_positions
    monkeypatch.setattr(tok, "model_max_length", context)  # the tokenizer's own warning fires past it
    long = " ".join(["bread"] * (context + 10))
    monkeypatch.setattr(logging.getLogger("transformers"), "propagate", True)  # its warnings reach caplog
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(UserError, match=rf"prompt 2 is \d+ tokens: the model's whole context of {context}; shorten it"),
    ):
        generate_batch(model, tok, ["Baker<|SEP|>", long], GenerationSettings(strategy="greedy"), progress=True)
    assert "generating" not in capfd.readouterr().err  # no progress bar started
    assert not [m for m in caplog.messages if "indexing errors" in m]  # the error replaces the tokenizer's warning


def test_a_character_cut_off_by_max_new_tokens_is_dropped_not_shown_as_a_replacement_char(tmp_path, bpe_tokenizer_dir):
    # A byte-level BPE spells characters its merges never saw (here Chinese, the tokenizer being trained on
    # English postings) as byte tokens, three per character: a continuation cut by max_new_tokens can end
    # inside one, which decodes to U+FFFD. A tiny GPT-2 memorises one Chinese line; greedy decoding then
    # writes it byte by byte, and every cut shows the whole characters written so far, nothing more.
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from domainlm.generation import drop_unfinished_char, unfinished_char_bytes

    tok = AutoTokenizer.from_pretrained(bpe_tokenizer_dir)
    line = "猫喜欢鱼。"
    ids = tok(line, add_special_tokens=False)["input_ids"]
    assert len(ids) == 3 * len(line) and tok.decode(ids) == line  # one token per byte
    assert tok.decode(ids[:4]) == "猫\ufffd" and unfinished_char_bytes(tok, ids[:4]) == 1
    assert unfinished_char_bytes(tok, ids[:5]) == 2 and unfinished_char_bytes(tok, ids[:6]) == 0
    assert drop_unfinished_char(tok, ids[:5], tok.decode(ids[:5])) == "猫"
    replacement = tok("\ufffd", add_special_tokens=False)["input_ids"]  # a U+FFFD the text really holds stays
    assert drop_unfinished_char(tok, replacement, "\ufffd") == "\ufffd"

    seq = torch.tensor([[*ids, tok.eos_token_id]])
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=32, vocab_size=len(tok),
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = model(input_ids=seq, labels=seq).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.02:
            break
    model.eval()
    prompt = tok.decode(ids[:3])  # 猫
    texts = []
    for new in range(1, 3 * (len(line) - 1) + 1):
        [g] = generate_batch(
            model, tok, [prompt], GenerationSettings(strategy="greedy", max_new_tokens=new), progress=False
        )
        assert not g.stopped and g.new_tokens == new
        texts.append(g.text)
    assert texts == [line[1 : 1 + n // 3] for n in range(1, 3 * (len(line) - 1) + 1)]
    assert not any("\ufffd" in t for t in texts)


BAD_WORD_ID = 300  # an ordinary token, forbidden by the saved generation config of padded_dir


@pytest.fixture(scope="module")
def padded_dir(tmp_path_factory, tiny_model_dir):
    """The tiny GPT-2 saved as run_clm.py saves it with --pad_vocab_to_multiple_of 64: 501 tokens, 512 rows
    (ids 501-511 have no token), and a generation config that also forbids one word (a setting generate.py
    has no flag for)."""
    from domainlm.args import ModelArguments
    from domainlm.modeling import configure_generation, load_model, load_tokenizer

    args = ModelArguments(model_name_or_path=str(tiny_model_dir), pad_vocab_to_multiple_of=64)
    tok = load_tokenizer(args)
    model = load_model(args, tok)
    configure_generation(model, tok)
    model.generation_config.bad_words_ids = [[BAD_WORD_ID]]
    out = tmp_path_factory.mktemp("padded")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def favour(model, ids):
    """Make ``ids`` the likeliest next tokens by far at every step, as untrained rows could be."""
    import torch

    bonus = torch.zeros(model.get_output_embeddings().weight.shape[0])
    bonus[ids] = 1e4
    model.get_output_embeddings().register_forward_hook(lambda m, i, out: out + bonus.to(out))


def generated_ids(model):
    """The new ids of each ``model.generate`` call, collected as the calls happen."""
    calls, original = [], model.generate

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        width = kwargs["input_ids"].shape[1] if "input_ids" in kwargs else args[0].shape[1]
        calls.append(out[:, width:].reshape(-1).tolist())
        return out

    model.generate = spy
    return calls


@pytest.mark.parametrize(
    "strategy", [["--strategy", "top_p", "--top_p", "1.0"], ["--strategy", "greedy"],
                 ["--strategy", "beam", "--num_beams", "3"]], ids=["sampling", "greedy", "beam"],
)  # fmt: skip
def test_generate_script_never_writes_padded_rows_pad_or_the_folders_forbidden_words(padded_dir, monkeypatch, strategy):
    # the saved generation config suppresses the 11 padded rows and <|pad|>, and forbids one word: generate.py
    # builds its own settings but keeps those, even where the model favours them most
    import domainlm.generation
    from generate import main

    calls = []

    def load(*args, **kwargs):
        model, tok = load_model_dir(*args, device="cpu", progress=False)
        favour(model, [*range(501, 512), tok.pad_token_id, BAD_WORD_ID])
        calls.append(generated_ids(model))
        return model, tok

    monkeypatch.setattr(domainlm.generation, "load_model_dir", load)
    rows = main(["--model_dir", str(padded_dir), "--quiet", "--prompt", "Baker<|SEP|>bread<|SEP|>",
                 "--max_new_tokens", "24", *strategy])  # fmt: skip
    [[ids]] = calls
    forbidden = {*range(501, 512), 1, BAD_WORD_ID}
    assert ids and not forbidden & set(ids), sorted(forbidden & set(ids))
    assert rows[0]["new_tokens"] == 24 or rows[0]["stopped_at_eos"]


def test_pipeline_of_the_saved_folder_never_writes_padded_rows_or_pad(padded_dir):
    import torch
    from transformers import pipeline

    generator = pipeline("text-generation", model=str(padded_dir))
    assert generator.model.generation_config.suppress_tokens == [1, *range(501, 512)]
    favour(generator.model, [*range(501, 512), generator.tokenizer.pad_token_id])
    torch.manual_seed(0)
    [out] = generator("Baker<|SEP|>bread<|SEP|>", top_p=1.0, top_k=0, max_new_tokens=24, return_tensors=True)
    new = out["generated_token_ids"][len(generator.tokenizer("Baker<|SEP|>bread<|SEP|>")["input_ids"]) :]
    assert len(new) == 24 and not {*range(501, 512), 1} & set(new)
    # the control: without the suppression, the favoured ids win every step
    [out] = generator("Baker<|SEP|>bread<|SEP|>", suppress_tokens=[], max_new_tokens=4, return_tensors=True)
    assert all(t >= 501 or t == 1 for t in out["generated_token_ids"][-4:])


def _model_copy(src, dst, *names):
    """A folder with only ``names`` of the saved folder ``src`` (all of them when none are given)."""
    import shutil

    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and (not names or f.name in names):
            shutil.copy(f, dst / f.name)
    return dst


TOKENIZER = ("tokenizer.json", "tokenizer_config.json")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda src, d: d, r"--model_dir {d}: no such folder"),
        (
            lambda src, d: _model_copy(src, d, "config.json", *TOKENIZER),
            r"--model_dir {d}: the folder holds no weights .*",
        ),
        (
            lambda src, d: _model_copy(src, d, "config.json", "model.safetensors", "generation_config.json"),
            r"--model_dir {d}: the folder holds no tokenizer \(none of tokenizer\.json, .*\); copy the tokenizer "
            r"files training used \(its --tokenizer_name folder\) into it",
        ),
        (
            lambda src, d: (
                _model_copy(src, d, "config.json", *TOKENIZER),
                (d / "global_step4").mkdir(),
                (d / "latest").write_text("global_step4"),
            )[0],
            r"--model_dir {d}: a DeepSpeed checkpoint \(global_step\*\) without the model's weights \(ZeRO-3 saves "
            r"them only with stage3_gather_16bit_weights_on_model_save\); write them with "
            r"`python {d}/zero_to_fp32\.py {d} OUT` and copy config\.json and the tokenizer into OUT",
        ),
        (
            lambda src, d: (d.mkdir(parents=True), (d / "mp_rank_00_model_states.pt").write_bytes(b"x"))[0] or d,
            r"--model_dir {d}: DeepSpeed's own files of one checkpoint, not a model; pass the checkpoint-N folder .*",
        ),
        (
            lambda src, d: (_model_copy(src, d / "checkpoint-2"), _model_copy(src, d / "checkpoint-10"))[0].parent,
            r"--model_dir {d}: no final model, only checkpoints \(checkpoint-2, checkpoint-10\): training did not "
            r"finish; pass --model_dir {d}/checkpoint-10, or resume training",
        ),
        (
            lambda src, d: (_model_copy(src, d), (d / "config.json").write_text('{"model_type": "gpt2",'))[0],
            r"--model_dir {d}: its config\.json is not valid JSON \(.*\); copy the folder again",
        ),
        (
            lambda src, d: (_model_copy(src, d), (d / "model.safetensors").write_bytes(b"\x00" * 100))[0],
            r"--model_dir {d}: its model cannot be loaded \(SafetensorError: .*\); a file of the folder is damaged "
            r"or incomplete: copy the folder again, or train again",
        ),
        (
            lambda src, d: (_model_copy(src, d), (d / "tokenizer.json").write_text("{"))[0],
            r"--model_dir {d}: its tokenizer cannot be loaded \(.*\); a file of the folder is damaged .*",
        ),
    ],
    ids=[
        "missing",
        "config_only",
        "no_tokenizer",
        "deepspeed_checkpoint",
        "global_step_folder",
        "only_checkpoints",
        "damaged_config",
        "damaged_weights",
        "damaged_tokenizer",
    ],
)
def test_a_folder_that_is_not_a_whole_model_is_named_in_one_line(memorised_dir, tmp_path, make, message):
    # before: a folder without a tokenizer said 'prompt 1 is empty' (transformers made an empty one); damaged
    # files gave tracebacks; a DeepSpeed or unfinished training folder was only 'not a model folder'
    from generate import main

    d = tmp_path / "model"
    make(memorised_dir, d)
    with pytest.raises(UserError) as err:
        main(["--model_dir", str(d), "--prompt", "Bake", "--quiet", "--strategy", "greedy", "--max_new_tokens", "2"])
    assert re.fullmatch(message.format(d=re.escape(str(d))), str(err.value)), str(err.value)
    if "checkpoint-10" in str(err.value):  # the folder it names works
        main(["--model_dir", str(d / "checkpoint-10"), "--prompt", "Bake", "--quiet", "--max_new_tokens", "2"])


def test_prompts_file_cells_that_are_not_text(tmp_path):
    # JSON titles that are numbers are text; an object where text goes is named, not a traceback
    write_jsonl(tmp_path / "p.jsonl", [{"title": 123, "keywords": ["bread", 7]}, {"title": "Baker", "keywords": None}])
    assert [p.prompt for p in prompts_from_file(tmp_path / "p.jsonl")] == ["123<|SEP|>bread, 7<|SEP|>",
                                                                          "Baker<|SEP|><|SEP|>"]  # fmt: skip
    write_jsonl(tmp_path / "bad.jsonl", [{"title": "Baker"}, {"text": {"body": "x"}}])
    with pytest.raises(
        UserError, match=r"bad\.jsonl: the row at line 2: its 'text' is dict .*, not text; make it a string"
    ):
        prompts_from_file(tmp_path / "bad.jsonl")
    write_csv(tmp_path / "cols.csv", [{"name": "Baker", "body": "Bake."}], ["name", "body"])
    with pytest.raises(UserError) as err:
        prompts_from_file(tmp_path / "cols.csv")
    assert str(err.value) == (
        f"{tmp_path / 'cols.csv'} has no 'title', 'prompt' or 'text' column (columns: 'body', 'name'); name the "
        "column of job titles 'title' (and that of their keywords 'keywords'), or that of texts to continue 'prompt'"
    )


def test_generate_script_with_a_dict_text_cell_says_which_row(memorised_dir, tmp_path):
    from generate import main

    write_jsonl(tmp_path / "p.jsonl", [{"text": {"body": "x"}}])
    with pytest.raises(UserError, match=r"p\.jsonl: the row at line 1: its 'text' is dict"):
        main(["--model_dir", str(memorised_dir), "--prompts_file", str(tmp_path / "p.jsonl"), "--quiet"])


def test_a_prompts_file_row_longer_than_the_context_is_named(memorised_dir, tmp_path):
    from generate import main

    write_csv(tmp_path / "p.csv", [{"prompt": "Bake"}, {"prompt": "bread " * 100}], ["prompt"])
    with pytest.raises(UserError) as err:
        main(["--model_dir", str(memorised_dir), "--prompts_file", str(tmp_path / "p.csv"), "--quiet"])
    assert re.fullmatch(
        rf"{re.escape(str(tmp_path / 'p.csv'))}: the row at line 3: its prompt is \d+ tokens, the model's whole "
        r"context of 64; shorten its title and keywords \(or its prompt\)",
        str(err.value),
    ), str(err.value)


def test_output_that_cannot_be_written_or_is_the_prompts_file_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    import tempfile

    from conftest import forbid

    import domainlm.generation
    from generate import main

    forbid(monkeypatch, (domainlm.generation, "load_model_dir"))
    write_jsonl(tmp_path / "p.jsonl", [{"title": "Baker", "keywords": "bread"}])
    before = (tmp_path / "p.jsonl").read_bytes()
    for output in (tmp_path / "p.jsonl", tmp_path / "sub" / ".." / "p.jsonl"):
        with pytest.raises(UserError) as err:
            main(["--model_dir", "m", "--prompts_file", str(tmp_path / "p.jsonl"), "--output", str(output)])
        assert str(err.value) == f"{tmp_path / 'p.jsonl'} is both an input and an output; choose another --output"
    assert (tmp_path / "p.jsonl").read_bytes() == before

    def read_only(*args, **kwargs):  # a read-only folder (root, who runs the tests here, writes anywhere)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    out = tmp_path / "new" / "out.jsonl"
    with pytest.raises(UserError) as err:
        main(["--model_dir", "m", "--prompt", "Bake", "--output", str(out)])
    assert str(err.value) == f"--output {out}: cannot write into {tmp_path} (Permission denied); choose another path"
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("strategy", ["top_p", "greedy", "beam"])
def test_a_record_never_gets_a_third_separator(tiny_model_dir, strategy):
    """The model favours <|SEP|> at every step: after title<|SEP|>keywords<|SEP|> it is never written (a
    body holds none); a prompt that holds one separator still gets its second, and then no more."""
    from domainlm.template import SEP_TOKEN

    model, tok = load_model_dir(tiny_model_dir, device="cpu")  # its own copy: favour() changes the model
    sep = tok.convert_tokens_to_ids(SEP_TOKEN)
    favour(model, [sep])
    calls = generated_ids(model)
    extra = {"top_p": 1.0} if strategy == "top_p" else {"num_beams": 2} if strategy == "beam" else {}
    settings = GenerationSettings(strategy=strategy, max_new_tokens=6, **extra)
    [out] = generate_batch(model, tok, ["Baker<|SEP|>bread<|SEP|>"], settings, progress=False)
    assert sep not in calls[-1] and SEP_TOKEN not in out.text and out.new_tokens == 6
    generate_batch(model, tok, ["Baker<|SEP|>"], settings, progress=False)
    assert calls[-1][0] == sep and sep not in calls[-1][1:]  # the second separator, then never again


def test_out_of_memory_while_generating_says_what_to_lower(tiny, monkeypatch):
    import torch

    model, tok = tiny

    def generate(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 512.00 MiB. GPU 0 has a total capacity "
                                     "of 23.55 GiB of which 100.00 MiB is free.")  # fmt: skip

    monkeypatch.setattr(model, "generate", generate)
    with pytest.raises(UserError) as err:
        generate_batch(model, tok, MIXED, GenerationSettings(num_return_sequences=2), progress=False)
    assert str(err.value) == (
        "out of memory generating 8 rows of up to 256 tokens at once (tried to allocate 512.00 MiB, 100.00 MiB "
        "free of 23.55 GiB); lower --batch_size (now 16), or --num_return_sequences or --num_beams (each is a row "
        "of the batch), or --max_new_tokens (now: until the context is full)"
    )
    with pytest.raises(UserError, match=r"^out of memory generating 1 row of up to 20 tokens at once \(tried .*; "
                                        r"the model needs a machine with more memory$"):  # fmt: skip
        generate_batch(model, tok, ["Baker<|SEP|>bread<|SEP|>"],
                       GenerationSettings(batch_size=1, max_new_tokens=20 - len(tok("Baker<|SEP|>bread<|SEP|>")["input_ids"])),
                       progress=False)  # fmt: skip


def cached_as_hub_model(cache, repo_id, folder, branch="main", commit="0" * 40):
    """``folder`` laid out as huggingface_hub's cache holds a downloaded model (refs/<branch> -> a snapshot)."""
    import shutil

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / branch).write_text(commit)
    return snapshot


def test_a_model_hub_name_generates_from_the_hub_cache(memorised_dir, tiny_model_dir, tmp_path, monkeypatch):
    """A model that run_clm.py --push_to_hub uploaded, by its hub name: from the cache here (HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    from generate import main

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    cached_as_hub_model(tmp_path / "hub", "someone/jobs-gpt2", memorised_dir)
    rows = main(["--model_dir", "someone/jobs-gpt2", "--title", "Baker", "--keywords", "bread,oven", "--quiet",
                 "--strategy", "greedy", "--max_new_tokens", "30"])  # fmt: skip
    assert rows[0]["generated"] == RECORDS[0][2]
    with pytest.raises(UserError) as err:
        main(["--model_dir", "someone/other-model", "--title", "Baker", "--quiet"])
    assert str(err.value).startswith(
        "--model_dir someone/other-model: not a local folder, and the model could not be loaded from the model hub ("
    )
    assert str(err.value).endswith("); pass the folder run_clm.py wrote")
    # a model pushed with --hub_revision: its branch, here another model (untrained: it writes something else)
    cached_as_hub_model(tmp_path / "hub", "someone/jobs-gpt2", tiny_model_dir, "lr-1e-4", "1" * 40)
    rows = main(["--model_dir", "someone/jobs-gpt2", "--revision", "lr-1e-4", "--title", "Baker", "--keywords",
                 "bread,oven", "--quiet", "--strategy", "greedy", "--max_new_tokens", "30"])  # fmt: skip
    assert rows[0]["generated"] != RECORDS[0][2]
    other = memorised_dir
    with pytest.raises(UserError) as err:
        main(["--model_dir", "someone/jobs-gpt2", "--revision", "no-such-branch", "--title", "Baker", "--quiet"])
    assert str(err.value).startswith("--model_dir someone/jobs-gpt2: not a local folder, and the model could not")
    with pytest.raises(UserError, match=rf"^--revision v2 is for a model hub name; --model_dir {other} is a local "):
        main(["--model_dir", str(other), "--revision", "v2", "--title", "Baker", "--quiet"])


def test_evaluating_a_hub_name_needs_an_output_folder(tmp_path):
    from evaluate_model import main

    with pytest.raises(UserError, match=r"^--model_dir someone/jobs-gpt2: no such folder; read as a model hub name, "
                                        r"it needs --output_dir for report.md and its files$"):  # fmt: skip
        main(["--model_dir", "someone/jobs-gpt2", "--validation_file", str(tmp_path / "validation.csv")])


def test_only_names_shaped_as_hub_ids_go_to_the_hub(tmp_path):
    from domainlm.generation import is_hub_name
    from generate import main

    assert [is_hub_name(n) for n in ("someone/jobs-gpt2", "gpt2", "EleutherAI/gpt-neo-1.3B")] == [True] * 3
    assert [is_hub_name(n) for n in ("my model", "a/b/c", "./x", "../x", str(tmp_path))] == [False] * 5
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    assert not is_hub_name(tmp_path / "link")  # a broken link is a folder that went, not a hub name
    with pytest.raises(UserError, match=r"^--model_dir my model: no such folder$"):
        main(["--model_dir", "my model", "--title", "Baker", "--quiet"])
