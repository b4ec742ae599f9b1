from domainlm.saving import move_files_into
from domainlm.trainer import drop_tied_copies


def write_files(folder, modes):
    import os

    folder.mkdir(parents=True, exist_ok=True)
    for name, mode in modes.items():
        (folder / name).write_text(name)
        os.chmod(folder / name, mode)


def test_files_are_moved_in_with_config_last(tmp_path):
    write_files(tmp_path / "tmp", {"config.json": 0o644, "model.safetensors": 0o644, "tokenizer.json": 0o644})
    write_files(tmp_path / "tmp" / "sub", {"a.txt": 0o644})
    moved = move_files_into(tmp_path / "tmp", tmp_path / "out")
    assert moved == ["model.safetensors", "sub/a.txt", "tokenizer.json", "config.json"]
    assert (tmp_path / "out" / "config.json").read_text() == "config.json"
    assert (tmp_path / "out" / "sub" / "a.txt").read_text() == "a.txt"
    assert [p for p in (tmp_path / "tmp").rglob("*") if p.is_file()] == []


def test_moved_files_get_the_permissions_of_a_new_file(tmp_path):
    """transformers writes model.safetensors 0600; the saved folder's files follow the umask instead."""
    import os
    import stat

    write_files(tmp_path / "tmp", {"model.safetensors": 0o600, "config.json": 0o644})
    old = os.umask(0o027)
    try:
        move_files_into(tmp_path / "tmp", tmp_path / "out")
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
