"""A hub name where the hub cannot be reached: the local cache, or one line at once (no minute of retries)."""

import http.server
import logging
import shutil
import socket
import threading

import pytest

from domainlm import hub
from domainlm.errors import UserError
from domainlm.modeling import _hub_load

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def online(monkeypatch):
    """HF_HUB_OFFLINE unset for the test (the suite sets it), and a fresh answer from ``hub_unreachable``."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    probe = hub.hub_unreachable  # a test may replace it
    probe.cache_clear()
    yield constants
    probe.cache_clear()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens on it once the socket is closed


@pytest.fixture
def http_server():
    """A local server that answers every request with 404, as a hub answers a name it does not have."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def cache_with(cache, tiny_model_dir, repo="someone/tiny-gpt2"):
    """The hub cache's layout (models--owner--name/refs/main, snapshots/<commit>/) holding a tiny model."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(SNAPSHOT)
    shutil.copytree(tiny_model_dir, root / "snapshots" / SNAPSHOT)
    return repo


def test_hub_unreachable_names_the_endpoint_and_why(online):
    url = f"http://127.0.0.1:{closed_port()}"
    why = hub.hub_unreachable(url)
    assert why.startswith(f"{url}: ")
    assert "\n" not in why and len(why) > len(url) + 2


def test_any_http_answer_means_the_hub_is_reachable(online, http_server):
    assert hub.hub_unreachable(http_server) is None


def test_unreachable_hub_and_empty_cache_fail_at_once_in_one_line(online, monkeypatch, tmp_path, caplog):
    from transformers import AutoConfig

    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setattr(online, "ENDPOINT", url)
    with caplog.at_level(logging.WARNING), pytest.raises(UserError) as err:
        _hub_load(AutoConfig, "gpt2-xl", "--model_name_or_path", "config", cache_dir=str(tmp_path / "cache"))
    message = str(err.value)
    assert message.startswith(
        f"--model_name_or_path gpt2-xl: not a local folder, the model hub cannot be reached ({url}: "
    )
    assert message.endswith("and the config is not in the local cache; pass a local folder that holds it")
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]  # the hub was asked once


def test_unreachable_hub_loads_a_cached_model_with_a_warning(online, monkeypatch, tmp_path, tiny_model_dir, caplog):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setattr(online, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    repo = cache_with(tmp_path / "cache", tiny_model_dir)
    kwargs = {"cache_dir": str(tmp_path / "cache")}
    with caplog.at_level(logging.WARNING, logger="domainlm.hub"):
        tokenizer = _hub_load(AutoTokenizer, repo, "--model_name_or_path", "tokenizer", **kwargs)
        model = _hub_load(AutoModelForCausalLM, repo, "--model_name_or_path", "model", **kwargs)
    expected = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert len(tokenizer) == len(AutoTokenizer.from_pretrained(tiny_model_dir))
    got, want = model.state_dict(), expected.state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)
    warnings = [r.getMessage() for r in caplog.records if r.name == "domainlm.hub"]
    assert len(warnings) == 2
    assert warnings[1].endswith(f"{repo}'s model comes from the local cache")


def test_a_reachable_hub_without_the_name_says_so(online, monkeypatch):
    calls = []

    def load(local_files_only):
        calls.append(local_files_only)
        raise OSError("nobody/no-such-model is not a local folder and is not a valid model identifier\nmore")

    monkeypatch.setattr(hub, "hub_unreachable", lambda *a: None)
    with pytest.raises(UserError) as err:
        hub.load_by_name(load, "nobody/no-such-model", "--config_name", "config", "pass a local folder")
    assert str(err.value) == (
        "--config_name nobody/no-such-model: not a local folder, and the config could not be loaded from the model "
        "hub (nobody/no-such-model is not a local folder and is not a valid model identifier); pass a local folder"
    )
    assert calls == [False]  # the hub, not the cache


def test_offline_mode_reads_the_cache_without_asking_the_hub(monkeypatch, tmp_path, tiny_model_dir):
    from huggingface_hub import constants
    from transformers import AutoConfig

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "hub_unreachable", lambda *a: pytest.fail("the hub was asked in offline mode"))
    repo = cache_with(tmp_path / "cache", tiny_model_dir)
    config = _hub_load(AutoConfig, repo, "--config_name", "config", cache_dir=str(tmp_path / "cache"))
    assert config.n_embd == AutoConfig.from_pretrained(tiny_model_dir).n_embd


def test_run_logging_prints_hub_warnings_once(tmp_path):
    """setup_logging's root handler prints huggingface_hub's records; its own handler would print them again."""
    from transformers import TrainingArguments

    from domainlm.train import setup_logging

    hub_logger = logging.getLogger("huggingface_hub")
    saved = list(hub_logger.handlers)
    try:
        setup_logging(TrainingArguments(output_dir=str(tmp_path), report_to=[]))
        assert hub_logger.handlers == [] and hub_logger.propagate
    finally:
        for handler in saved:
            hub_logger.addHandler(handler)
