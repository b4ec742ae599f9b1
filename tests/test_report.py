"""report.md and its PNGs from hand-made results: files written, figures referenced, numbers shown."""

from domainlm.evaluation import summarise
from domainlm.report import plot_loss, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def results_and_samples():
    kws = ["bread, oven", "van, routes"]
    cond = summarise(["Bake bread in the oven.", "Drive the van."], kws, [True, True])
    title = summarise(["Bake bread.", "Drive."], kws, [True, False])
    results = {
        "model_dir": "work/finetuned", "parameters": 4_531_456, "validation_file": "validation.csv", "prompts": 2,
        "skipped_without_keywords": 1, "settings": {"strategy": "greedy", "max_new_tokens": 30, "top_k": None},
        "conditions": {"conditioned": cond, "title_only": title}, "coverage_ratio": 0.75 / 0.25,
        "perplexity": {"texts": 3, "after": 12.5, "before": 4500.0, "base_model": "`init`", "training_eval": 12.4,
                       "training_eval_before": 4400.0},
    }  # fmt: skip
    samples = [
        {"condition": c, "title": t, "seed": i, "return_index": 0, "generated": g, "keyword_hits": h}
        for c, t, i, g, h in [
            ("conditioned", "Baker", 0, "Bake bread in the oven.", {"bread": True, "oven": True}),
            ("title_only", "Baker", 0, "Bake bread.", {"bread": True, "oven": False}),
        ]
    ]
    return results, samples


def test_report_with_loss_curve_and_coverage_plot(tmp_path):
    results, samples = results_and_samples()
    state = {"log_history": [{"loss": 6.0, "step": 10}, {"eval_loss": 5.0, "eval_perplexity": 148.4, "step": 10,
                                                        "epoch": 1.0}, {"loss": 4.0, "step": 20}]}  # fmt: skip
    path = write_report(tmp_path, results, samples, state)
    assert path == tmp_path / "report.md"
    for name in ("loss.png", "keyword_coverage.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG and len(data) > 5000
    from PIL import Image

    with Image.open(tmp_path / "keyword_coverage.png") as img:
        img.verify()
    text = path.read_text()
    assert "![Keyword coverage per posting, keywords in the prompt vs title only](keyword_coverage.png)" in text
    assert "![Training and evaluation loss over steps](loss.png)" in text
    assert "contains 75.0% of them on average; from the title alone, 25.0%: **3.00×**" in text
    assert "meets the goal of 2×" in text
    assert "| title + keywords | 75.0% | 75.0% | 4 |" in text
    assert "| before fine-tuning: `init` | 4500.000 |" in text and "| after fine-tuning | 12.500 |" in text
    assert "| 1.000 | 10 | 5.0000 | 148.400 |" in text
    assert "blocks it evaluated): 12.400; before training (`eval_before_perplexity`): 4400.000." in text
    assert "**Baker**, title only (seed 0); keywords found: bread; missing: oven" in text
    assert "Decoding: strategy greedy, max_new_tokens 30." in text  # unused settings left out
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_report_without_trainer_state_says_so(tmp_path):
    results, samples = results_and_samples()
    results["coverage_ratio"] = 1.5
    del results["perplexity"]["training_eval_before"]  # a run without --eval_before_training
    text = write_report(tmp_path, results, samples, None).read_text()
    assert "token-weighted over the blocks it evaluated): 12.400.\n" in text
    assert "Computed here on the 3 validation texts (" in text
    results["perplexity"]["texts"] = 1
    assert (
        "Computed here on the 1 validation text (" in write_report(tmp_path / "one", results, samples, None).read_text()
    )
    results["perplexity"]["training_eval_loss_on"] = "body"  # trained and evaluated with --loss_on body
    body = write_report(tmp_path / "body", results, samples, None).read_text()
    assert "blocks it evaluated, on the posting bodies and end-of-text alone: `--loss_on body`): 12.400.\n" in body
    assert not (tmp_path / "loss.png").exists() and (tmp_path / "keyword_coverage.png").is_file()
    assert "No `trainer_state.json` in the model folder: no loss curve." in text
    assert "misses the goal of 2×" in text
    assert plot_loss([{"epoch": 1.0, "step": 5, "train_runtime": 3.0}], tmp_path / "none.png") is False
