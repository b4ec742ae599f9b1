"""A saved folder whose tiny GPT-2 has memorised two records (or two plain texts): generation's output is
then known exactly.

Trained with a plain torch loop (about a second on one core) rather than the Trainer, which
tests/test_train.py already covers; saved like run_clm.py saves: weights, tokenizer and the generation
defaults of ``configure_generation``.
"""

from __future__ import annotations

from pathlib import Path

from domainlm.template import format_prompt, format_record

RECORDS = [
    ("Baker", "bread, oven", "Bake bread daily.\nClean the oven."),
    ("Van Driver", "routes, van", "Drive the van on set routes."),
]
ROWS = [format_record(*r) for r in RECORDS]
PROMPTS = [format_prompt(t, k) for t, k, _ in RECORDS]
# plain text, as text2csv.py writes it: no title, no keywords
PLAIN = ["The night train crossed the frozen river slowly.", "Lamps burned on the far shore until the morning came."]
_BUILT: dict[tuple[Path, tuple[str, ...]], Path] = {}


def memorised_model_dir(tmp_path_factory, tokenizer_dir: Path, rows: list[str] = ROWS) -> Path:
    """Built once per test session (per set of rows), shared by the test modules that need it."""
    key = (tokenizer_dir, tuple(rows))
    if key not in _BUILT:
        _BUILT[key] = build_memorised_model(tmp_path_factory.mktemp("memorised"), tokenizer_dir, rows=rows)
    return _BUILT[key]


def build_memorised_model(out: Path, tokenizer_dir: Path, context: int = 64, rows: list[str] = ROWS) -> Path:
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from domainlm.modeling import configure_generation

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-core machine shared with others runs this 10x faster on one thread
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    seqs = [tok(r, add_special_tokens=False)["input_ids"] + [eos] for r in rows]
    width = max(len(s) for s in seqs)
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    labels = torch.tensor([s + [-100] * (width - len(s)) for s in seqs])
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=context, vocab_size=len(tok),
                        bos_token_id=eos, eos_token_id=eos, pad_token_id=pad)  # fmt: skip
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.02:
            break
    torch.set_num_threads(threads)
    assert loss.item() < 0.05, f"did not memorise: loss {loss.item():.3f}"
    configure_generation(model, tok)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
