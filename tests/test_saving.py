import pytest

from domainlm.saving import save_atomically
from domainlm.trainer import drop_tied_copies


def test_failed_save_leaves_the_folder_as_it_was(tmp_path):
    (tmp_path / "config.json").write_text("old")

    def crash(folder):
        (tmp_path / "unrelated").mkdir()
        with open(f"{folder}/model.safetensors", "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        save_atomically(crash, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "unrelated"]
    assert (tmp_path / "config.json").read_text() == "old"


def test_files_are_moved_in_with_config_last(tmp_path):
    def save(folder):
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            with open(f"{folder}/{name}", "w") as f:
                f.write(name)

    assert save_atomically(save, tmp_path / "out") == ["model.safetensors", "tokenizer.json", "config.json"]
    assert (tmp_path / "out" / "config.json").read_text() == "config.json"
    assert not (tmp_path / "out" / ".saving").exists()


def test_moved_files_get_the_permissions_of_a_new_file(tmp_path):
    """transformers writes model.safetensors 0600; the saved folder's files follow the umask instead."""
    import os
    import stat

    def save(folder):
        for name, mode in (("model.safetensors", 0o600), ("config.json", 0o644)):
            with open(f"{folder}/{name}", "w") as f:
                f.write(name)
            os.chmod(f"{folder}/{name}", mode)

    old = os.umask(0o027)
    try:
        save_atomically(save, tmp_path / "out")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir()}
    assert modes == {"model.safetensors": 0o640, "config.json": 0o640}


def test_tied_head_copy_is_dropped_only_when_equal():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=20, n_positions=16))
    copies = {k: v.clone() for k, v in model.state_dict().items()}
    assert "lm_head.weight" in copies
    kept = drop_tied_copies(model, copies)
    assert "lm_head.weight" not in kept and "transformer.wte.weight" in kept
    copies["lm_head.weight"] = torch.zeros_like(copies["lm_head.weight"])
    assert "lm_head.weight" in drop_tied_copies(model, copies)
