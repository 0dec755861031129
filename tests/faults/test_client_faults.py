"""The client side and the smaller items of issue 23: a model list that hangs, a proxy in the
environment, a key of spaces, a password in the server URL, absurd targets, a YAML alias
bomb, a judge's reason of megabytes, and an `rl` run pointed at a folder of the user's."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sse_server import Script, ScriptedServer

from faults import AFTER
from faults.common import QUESTION, cli, errors, logged, script
from longwrite.engines.base import Sampling
from longwrite.engines.openai import OpenAIEngine, ServerTimeout, from_env
from longwrite.errors import LongwriteError

# ---------------------------------------------------------------- 9: a model list that hangs


def test_a_model_list_that_hangs_fails_in_seconds_not_the_generation_timeout() -> None:
    with ScriptedServer(Script(models_hang=60)) as srv:
        started = time.monotonic()
        with pytest.raises(ServerTimeout, match=r"did not answer GET /models within 0.5 s"):
            OpenAIEngine(srv.url, timeout=600, models_timeout=0.5)
        took = time.monotonic() - started
        asked = len(srv.requests)
    assert took < 10 and asked <= 2  # at most one retry, never the 600 s generation timeout


# ---------------------------------------------------------------- 17: no proxy for loopback


def test_the_key_for_a_loopback_server_never_goes_through_a_proxy(monkeypatch) -> None:
    with (
        ScriptedServer(Script(text="Tides.", api_key="k1")) as srv,
        ScriptedServer(Script()) as proxy,
    ):
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.setenv("LONGWRITE_API_KEY", "k1")
        engine = from_env(srv.url, None)
        text = "".join(c.text for c in engine.stream(Script().prompt, Sampling(stop=())))
        engine.close()
    assert text == "Tides."
    assert proxy.requests == []  # the proxy saw nothing, the key least of all
    assert {r.headers["authorization"] for r in srv.requests} == {"Bearer k1"}


# ---------------------------------------------------------------- 18: a key of spaces


def test_a_key_of_spaces_is_no_key(monkeypatch) -> None:
    from longwrite.serve import api_key_from

    assert api_key_from({"LONGWRITE_API_KEY": "   "}) is None
    assert api_key_from({"LONGWRITE_API_KEY": " ", "VLLM_API_KEY": "\t"}) is None
    with ScriptedServer(Script(text="x")) as srv:
        monkeypatch.setenv("LONGWRITE_API_KEY", "   ")
        from_env(srv.url, None).close()
        assert srv.requests[-1].headers["authorization"] == "Bearer EMPTY"
    proc = cli("serve", "--host", "0.0.0.0", "--dry-run", LONGWRITE_API_KEY="   ")
    assert proc.returncode == 2
    (line,) = errors(proc.stderr)
    assert "--host 0.0.0.0 lets other machines use the server: set LONGWRITE_API_KEY" in line


# ---------------------------------------------------------------- 16: a password in the URL


def test_a_password_in_the_url_is_never_printed_nor_stored(tmp_path) -> None:
    with ScriptedServer(script(junk_after=AFTER)) as srv:
        url = srv.url.replace("http://", "http://alice:PASSWORD@")
        proc = cli(QUESTION, "--server", url, "--max-rounds", "0")
    assert proc.returncode == 1
    (line,) = errors(proc.stderr)
    assert f"the server at {srv.url}/v1 sent an event" in line
    record = logged()
    assert record["status"] == "failed" and record["raw"]
    assert "PASSWORD" not in json.dumps(record) and "alice" not in json.dumps(record)
    refused = cli(QUESTION, "--server", "http://alice:PASSWORD@127.0.0.1:9")
    assert refused.returncode == 2 and "PASSWORD" not in refused.stderr
    assert "cannot reach the server at http://127.0.0.1:9/v1" in refused.stderr
    doctor = cli("doctor", "--json", LONGWRITE_SERVER="http://alice:PASSWORD@127.0.0.1:9")
    assert "PASSWORD" not in doctor.stdout + doctor.stderr
    assert "http://127.0.0.1:9" in doctor.stdout


# ---------------------------------------------------------------- 13: absurd targets


@pytest.mark.parametrize(
    "args",
    [
        ["Write a 999,999,999,999-word essay about tides.", "--dry-run"],
        ["Write an essay about tides.", "--words", "1000000000000", "--dry-run"],
        ["Write a 2,000,001-word essay about tides.", "--dry-run"],
    ],
    ids=["stated", "words", "just-over"],
)
def test_an_absurd_target_is_refused_at_once(args: list[str]) -> None:
    started = time.monotonic()
    proc = cli(*args)
    assert proc.returncode == 2 and time.monotonic() - started < 30
    (line,) = errors(proc.stderr)
    assert "is more than longwrite writes (at most 2,000,000 words)" in line


def test_the_longest_target_allowed_is_planned(tmp_path) -> None:
    proc = cli("Write a 2,000,000-word saga about tides.", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["target_words"] == 2_000_000


def test_an_absurd_batch_line_is_one_malformed_line(tmp_path) -> None:
    from longwrite.batch.input import read_items
    from longwrite.generate.job import WriteOptions

    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"prompt": "Write a 131,371,519,000-word book."}) + "\n"
        + json.dumps({"prompt": "Write a poem.", "words": 10**12}) + "\n"
        + json.dumps({"prompt": "Write a poem."}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    items, problems = read_items(src, WriteOptions(prompt=""))
    assert [i.line for i in items] == [3]
    assert [p.line for p in problems] == [1, 2]
    assert all("at most 2,000,000 words" in p.message for p in problems)


def test_a_rollout_server_url_the_http_library_cannot_read_is_a_recipe_error(tmp_path) -> None:
    from longwrite.rl.config import load_config

    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "Write a 20-word slogan."}) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: tiny\ndata: {data}\noutput_dir: {tmp_path / 'run'}\nrollout:\n"
        '  engine: vllm-server\n  vllm_server: "http://[::1"\n'
    )
    with pytest.raises(LongwriteError, match=r"rollout.vllm_server must be a URL"):
        load_config(recipe, processes=1)


# ---------------------------------------------------------------- 19: what a line quotes


def test_a_yaml_alias_bomb_is_one_short_line(tmp_path: Path) -> None:
    from longwrite.rl.config import load_config

    rows = ['model: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, ref in zip("bcdef", "abcde", strict=True):
        rows.append(f"{name}: &{name} [" + ",".join([f"*{ref}"] * 9) + "]")
    rows.append("output_dir: *f")  # 9**6 = 531,441 strings, 34 MB when printed whole
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(LongwriteError) as info:
        load_config(recipe, processes=1)
    assert len(str(info.value)) < 600 and "bomb.yaml" in str(info.value)


def test_a_critics_reason_is_kept_short() -> None:
    from longwrite.evaluate.writingbench import REASON_CHARS, parse_verdict

    verdict = parse_verdict('{"score": 7, "reason": "' + "because " * 10_000 + '"}')
    assert verdict["score"] == 7 and len(verdict["reason"]) == REASON_CHARS


# ---------------------------------------------------------------- 4: a folder of the user's


@pytest.mark.parametrize("planted", ["config.yaml", "notes.md"])
def test_rl_refuses_a_folder_of_the_users_before_writing_in_it(tmp_path, monkeypatch, planted):
    import trl

    from longwrite.rl.config import load_config
    from longwrite.rl.train import run_train

    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "Write a 20-word slogan."}) + "\n")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / planted).write_text("my own recipe, hand-tuned for a week\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: tiny\ndata: {data}\noutput_dir: {folder}\nrollout:\n  num_generations: 4\n"
        "  max_completion_length: 16\ntrain:\n  max_steps: 2\n  per_device_train_batch_size: 4\n"
    )
    cfg = load_config(recipe, processes=1)
    monkeypatch.setattr(trl, "GRPOTrainer", lambda **kw: pytest.fail("a model was loaded"))
    for resume in (False, True):
        with pytest.raises(LongwriteError, match=f"output_dir {folder}"):
            run_train(cfg, resume=resume)
    assert sorted(p.name for p in folder.iterdir()) == [planted]
    assert (folder / planted).read_text() == "my own recipe, hand-tuned for a week\n"
