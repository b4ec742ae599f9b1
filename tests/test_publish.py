"""--push_to_hub: the repository made before any work, the finished folder uploaded once, checkpoints
left out. The hub is replaced by fakes of huggingface_hub's create_repo and upload_folder, which
record what they were given and the files that would go up."""

from pathlib import Path

import pytest
from huggingface_hub.utils import filter_repo_objects

from domainlm import publish
from domainlm.errors import UserError
from domainlm.train import main


class FakeHub:
    def __init__(self, fail: str | None = None):
        self.calls: list[tuple] = []
        self.fail = fail

    def create_repo(self, name, **kw):
        self.calls.append(("create_repo", name, kw))
        if self.fail == "create_repo":
            raise PermissionError("401 Unauthorized: invalid token")
        return type("RepoUrl", (), {"repo_id": f"someone/{name}" if "/" not in name else name})()

    def upload_folder(self, **kw):
        folder = kw["folder_path"]
        files = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())
        kept = sorted(filter_repo_objects(files, ignore_patterns=kw["ignore_patterns"]))
        self.calls.append(("upload_folder", kept, kw))
        if self.fail == "upload_folder":
            raise ConnectionError("connection reset by peer")
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kw['repo_id']}/commit/abc"})()


@pytest.fixture
def hub(monkeypatch):
    """The hub reachable (HF_HUB_OFFLINE=1 in the tests, and no network), with fakes for its two calls."""
    import huggingface_hub

    fake = FakeHub()
    monkeypatch.setattr(publish, "hub_offline", lambda: False)
    monkeypatch.setattr(publish, "hub_unreachable", lambda endpoint: None)
    monkeypatch.setattr(huggingface_hub, "create_repo", fake.create_repo)
    monkeypatch.setattr(huggingface_hub, "upload_folder", fake.upload_folder)
    return fake


def run(tmp_path, model_dir, records_dir, *flags):
    return main(["--model_name_or_path", str(model_dir), "--train_file", str(records_dir / "train.csv"),
                 "--do_train", "--max_steps", "2", "--per_device_train_batch_size", "4", "--save_steps", "1",
                 "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--disable_tqdm", "true",
                 "--push_to_hub", *flags])  # fmt: skip


def test_the_saved_folder_goes_up_once_without_checkpoints_or_the_token(tmp_path, tiny_model_dir, records_dir, hub):
    run(tmp_path, tiny_model_dir, records_dir, "--hub_model_id", "jobs-gpt2", "--hub_private_repo", "true",
        "--hub_token", "hf_SECRET_TOKEN")  # fmt: skip
    out = tmp_path / "out"
    assert (out / "checkpoint-2").is_dir()  # kept on disk, not uploaded
    (create, name, create_kw), (upload, files, upload_kw) = hub.calls
    assert (create, name, create_kw["private"], create_kw["exist_ok"]) == ("create_repo", "jobs-gpt2", True, True)
    assert create_kw["token"] == upload_kw["token"] == "hf_SECRET_TOKEN"
    # the Trainer pickles its arguments into training_args.bin, uploaded too: the token is in no file
    assert "training_args.bin" in files
    assert not [p for p in out.rglob("*") if p.is_file() and b"hf_SECRET_TOKEN" in p.read_bytes()]
    assert upload == "upload_folder" and upload_kw["repo_id"] == "someone/jobs-gpt2"
    assert upload_kw["folder_path"] == str(out)
    assert not [f for f in files if f.startswith(("checkpoint-", "."))]
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md",
                 "all_results.json", "trainer_state.json"):  # fmt: skip
        assert name in files
    card = (out / "README.md").read_text()
    assert 'pipeline("text-generation", model="someone/jobs-gpt2")' in card  # the card names the repository


def test_a_token_that_cannot_make_the_repository_stops_before_any_work(
    tmp_path, tiny_model_dir, records_dir, hub, monkeypatch
):
    hub.fail = "create_repo"
    with pytest.raises(UserError) as err:
        run(tmp_path, tiny_model_dir, records_dir, "--token", "hf_bad")
    assert str(err.value) == (
        "--push_to_hub: the hub repository out cannot be made or reached (PermissionError: 401 Unauthorized: invalid "
        "token); log in with `hf auth login` (or pass --hub_token), or give --hub_model_id a repository you can "
        "write to"
    )
    assert hub.calls[0][2]["token"] == "hf_bad"  # run_clm.py's --token, without --hub_token
    assert not (tmp_path / "out" / "checkpoint-1").exists()


def test_a_failed_upload_keeps_the_model_and_says_how_to_upload_it(tmp_path, tiny_model_dir, records_dir, hub):
    hub.fail = "upload_folder"
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        run(tmp_path, tiny_model_dir, records_dir, "--hub_model_id", "me/jobs")
    assert str(err.value) == (
        f"--push_to_hub: the model is saved in {out}, but uploading it to me/jobs failed (ConnectionError: "
        f"connection reset by peer); upload it with hf upload me/jobs {out} --exclude 'checkpoint-*'"
    )
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()


def test_without_the_hub_the_run_stops_at_once(tmp_path, tiny_model_dir, records_dir):
    """HF_HUB_OFFLINE=1, as in these tests: one line, where the Trainer's own push gave a traceback."""
    with pytest.raises(UserError, match=r"^--push_to_hub: HF_HUB_OFFLINE is set, so out cannot be uploaded; unset it"):
        run(tmp_path, tiny_model_dir, records_dir)
    with pytest.raises(UserError, match=r"^--push_to_hub uploads the model a run trains: add --do_train"):
        main(["--model_name_or_path", str(tiny_model_dir), "--validation_file", str(records_dir / "validation.csv"),
              "--do_eval", "--output_dir", str(tmp_path / "eval"), "--push_to_hub"])  # fmt: skip
