"""The evaluation loss is token-weighted: every predicted token of the validation set counts once.

The Trainer alone averages per-batch means, weighted by rows. Here the validation records differ a lot
in length, so the two definitions differ; the test computes both by hand with the same model, each
record run alone.
"""

import math

import pytest
import torch
from conftest import write_text_csv

from domainlm.template import EOS_TOKEN, format_record
from domainlm.train import main

WORDS = ["bread", "oven", "flour", "yeast", "dough", "crust", "salt", "water", "butter", "sugar"]


def records() -> list[str]:
    # 5 records of 19 to 89 tokens: batches of 2 hold very different numbers of tokens
    return [format_record(f"Baker {i}", ["bread", "oven"], " ".join(WORDS[j % 10] for j in range(n)))
            for i, n in enumerate((3, 24, 2, 16, 1))]  # fmt: skip


def by_hand(model_dir, texts: list[str], batch: int) -> tuple[float, float]:
    """(token-weighted loss, row-weighted mean of per-batch means) of ``texts``, each run alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    sums, counts = [], []
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tok(text + EOS_TOKEN)["input_ids"]])
            n = ids.shape[1] - 1
            sums.append(model(input_ids=ids, labels=ids).loss.item() * n)
            counts.append(n)
    batches = [slice(i, i + batch) for i in range(0, len(texts), batch)]
    per_batch = [(sum(sums[b]) / sum(counts[b]), len(counts[b])) for b in batches]
    return sum(sums) / sum(counts), sum(loss * rows for loss, rows in per_batch) / len(texts)


@pytest.mark.parametrize("mode", ["records", "packed"])
def test_eval_loss_counts_every_token_once(tmp_path, tiny_model_dir, mode):
    texts = records()
    write_text_csv(tmp_path / "validation.csv", [{"text": t} for t in texts])
    results = main(
        ["--model_name_or_path", str(tiny_model_dir), "--validation_file", str(tmp_path / "validation.csv"),
         "--do_eval", "--sequence_mode", mode, "--per_device_eval_batch_size", "2", "--block_size", "128",
         "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--disable_tqdm", "true"]
    )  # fmt: skip
    weighted, per_batch = by_hand(tiny_model_dir, texts, 2)
    assert abs(weighted - per_batch) > 1e-3  # the two definitions differ on this set
    assert results["eval_loss"] == pytest.approx(weighted, rel=1e-5)
    assert results["eval_perplexity"] == pytest.approx(math.exp(weighted), rel=1e-5)
