"""The config file, end to end: real `longwrite` processes with a config file of their own.

Each setting has four sources, and a flag beats the environment, which beats the file,
which beats the built-in default, on every command: checked for the main command (what
`--dry-run --json` would send), `batch` (the temperature a scripted server receives) and an
eval (the judge it asks, named by the one-line fault of a closed port). A damaged file is one
line naming the file, the key and the nearest known key (exit 2), refused by every command
that reads it and mended by `config unset` or reported whole by `doctor`. `config set` writes
what a following run uses, named servers and the key's variable included; the key itself is
never in the file and never printed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sse_server import Script, ScriptedServer
from test_batch_servers import EchoServer, write_input

from longwrite.config.file import config_path
from longwrite.prompt.request import build_request

QUESTION = "Write about tides."
TEXT = "<think>The moon, the sea.</think>\n<answer>\n# Tides\n\nThe sea climbs the harbour wall."


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's config file (LONGWRITE_CONFIG), not created."""
    path = tmp_path / "conf" / "config.toml"
    monkeypatch.setenv("LONGWRITE_CONFIG", str(path))
    return path


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    base = {**os.environ, "LONGWRITE_SERVER": "", "LONGWRITE_API_KEY": "", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "longwrite", *args],
        capture_output=True, text=True, timeout=timeout, env={**base, **(env or {})},
    )  # fmt: skip


def one_error(proc: subprocess.CompletedProcess) -> str:
    """The single `longwrite: error:` line of a usage fault (exit 2, no traceback)."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("longwrite: error: "), proc.stderr
    return lines[0].removeprefix("longwrite: error: ")


def dry_run(*args: str, env: dict[str, str] | None = None) -> dict:
    proc = cli(QUESTION, "--dry-run", "--json", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# -- where the file is --------------------------------------------------------------------


def test_the_file_is_named_by_longwrite_config_else_xdg_else_dot_config() -> None:
    assert config_path({}) == Path("~/.config/longwrite/config.toml").expanduser()
    assert config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/longwrite/config.toml")
    both = {"XDG_CONFIG_HOME": "/x", "LONGWRITE_CONFIG": "/y/my.toml"}
    assert config_path(both) == Path("/y/my.toml")
    blank = {"LONGWRITE_CONFIG": " ", "XDG_CONFIG_HOME": ""}
    assert config_path(blank) == config_path({})


def test_config_path_prints_the_file_of_xdg_config_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LONGWRITE_CONFIG", raising=False)
    proc = cli("config", "path", env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert proc.returncode == 0
    assert proc.stdout.strip() == str(tmp_path / "xdg" / "longwrite" / "config.toml")


# -- precedence on three commands -----------------------------------------------------------

SOURCES = ["default", "file", "environment", "flag"]


def given(source: str, cfg: Path, key: str, env_name: str, flag: str, values: dict) -> tuple:
    """The file, environment and flags for `source` and every source below it."""
    rank = SOURCES.index(source)
    if rank >= 1:
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(f"{key} = {json.dumps(values['file'])}\n", encoding="utf-8")
    env = {env_name: str(values["environment"])} if rank >= 2 else {}
    flags = [flag, str(values["flag"])] if rank >= 3 else []
    return env, flags


@pytest.mark.parametrize("source", SOURCES)
def test_precedence_on_the_main_command(source: str, cfg: Path) -> None:
    values = {"default": 0.6, "file": 0.3, "environment": 0.4, "flag": 0.5}
    env, flags = given(source, cfg, "temperature", "LONGWRITE_TEMPERATURE", "--temperature",
                       values)  # fmt: skip
    assert dry_run(*flags, env=env)["temperature"] == values[source]


@pytest.mark.parametrize("source", SOURCES)
def test_precedence_of_a_switch_on_the_main_command(source: str, cfg: Path) -> None:
    """`think = false` in the file; LONGWRITE_THINK=1 above it; --no-think above that."""
    rank = SOURCES.index(source)
    if rank >= 1:
        cfg.parent.mkdir(parents=True)
        cfg.write_text("think = false\n", encoding="utf-8")
    env = {"LONGWRITE_THINK": "1"} if rank >= 2 else {}
    flags = ["--no-think"] if rank >= 3 else []
    expected = {"default": True, "file": False, "environment": True, "flag": False}[source]
    assert dry_run(*flags, env=env)["think"] is expected


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_precedence_on_batch(source: str, cfg: Path, tmp_path: Path) -> None:
    values = {"default": 0.6, "file": 0.3, "environment": 0.4, "flag": 0.5}
    env, flags = given(source, cfg, "temperature", "LONGWRITE_TEMPERATURE", "--temperature",
                       values)  # fmt: skip
    write_input(tmp_path / "in.jsonl", 2)
    with EchoServer(Script(pieces=(8,))) as srv:
        proc = cli("batch", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"),
                   "--server", srv.url, "--max-rounds", "0", *flags, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert {r.body["temperature"] for r in srv.completions} == {values[source]}


@pytest.mark.parametrize("source", SOURCES)
def test_precedence_on_an_eval(source: str, cfg: Path, tmp_path: Path) -> None:
    """The judge's URL: `judge.url` in the file, LONGWRITE_JUDGE_URL, --judge."""
    results = tmp_path / "results.jsonl"
    results.write_text('{"prompt": "p", "answer": "a"}\n', encoding="utf-8")
    ports = {s: f"http://127.0.0.1:{closed_port()}" for s in SOURCES[1:]}
    rank = SOURCES.index(source)
    if rank >= 1:
        cfg.parent.mkdir(parents=True)
        cfg.write_text(f'[judge]\nurl = "{ports["file"]}"\n', encoding="utf-8")
    env = {"LONGWRITE_JUDGE_URL": ports["environment"]} if rank >= 2 else {}
    flags = ["--judge", ports["flag"]] if rank >= 3 else []
    error = one_error(cli("eval", "quality", str(results), *flags, env=env))
    if source == "default":
        assert error.startswith("--judge URL is required")
    else:
        assert error.startswith(f"cannot reach the server at {ports[source]}/v1")


def test_help_shows_each_default_as_it_will_apply(cfg: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_text('temperature = 0.3\nthink = false\n[judge]\nurl = "http://j:1"\n')
    write = cli("write", "--help", env={"LONGWRITE_TOP_P": "0.5"}).stdout
    assert "(0.3 from the config file)" in write
    assert "(--no-think from the config file)" in write
    assert "(0.5 from LONGWRITE_TOP_P)" in write
    assert "[default: 32768]" in write  # a built-in default, as before
    assert "(http://j:1 from the config file)" in cli("eval", "quality", "--help").stdout


def test_a_logged_run_keeps_its_own_model_and_server(cfg: Path) -> None:
    """`continue` and `revise` carry a run on with the run's settings: the file's model and
    server are for new runs, and their help says so."""
    cfg.parent.mkdir(parents=True)
    cfg.write_text('model = "m"\nserver = "http://s:1"\n')
    for command in ("continue", "revise"):
        text = cli(command, "--help").stdout
        assert "from the config file" not in text and "(default: the run's" in text


# -- a damaged file ---------------------------------------------------------------------------

DAMAGED = [
    ("temprature = 0.3\n", "unknown key 'temprature' (did you mean 'temperature'?)"),
    ("[judge]\nulr = 'http://j:1'\n", "unknown key 'judge.ulr' (did you mean 'judge.url'?)"),
    ("[servers.gpu]\nurl = 'http://g:1'\ntemperature = 0.3\n",
     "unknown key 'servers.gpu.temperature' (did you mean 'temperature'? a key of the top level "
     "goes above the first [table])"),
    ('temperature = "0.3"\n', "temperature: expected a number, not '0.3'"),
    ("think = 1\n", "think: expected true or false, not 1"),
    ('thinking = "dim"\n', "thinking: expected one of hide, show, keep, not 'dim'"),
    ("server = 8000\n", "server: expected a string or a list of strings, not 8000"),
    ("judge = 'http://j:1'\n", "judge: expected a table ([judge]), not 'http://j:1'"),
    ("[servers.gpu]\napi_key_env = 'G'\n",
     "servers.gpu.url is missing: a named server needs its url"),
    ("model = [\n", "not valid TOML: "),
]  # fmt: skip


@pytest.mark.parametrize(("text", "said"), DAMAGED)
def test_a_damaged_file_is_one_line_naming_file_and_key(text: str, said: str, cfg: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_text(text, encoding="utf-8")
    assert one_error(cli(QUESTION, "--dry-run")).startswith(f"{cfg}: {said}")


@pytest.mark.parametrize(
    "text", ['api_key = "sk-live-0123456789"\n', 'api_key_env = "sk-live-0123456789"\n',
             '[servers.gpu]\nurl = "http://g:1"\ntoken = "sk-live-0123456789"\n'],
)  # fmt: skip
def test_a_key_in_the_file_is_refused_and_never_echoed(text: str, cfg: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_text(text, encoding="utf-8")
    error = one_error(cli(QUESTION, "--dry-run"))
    assert "sk-live" not in error
    assert "api_key_env" in error


def test_a_config_file_that_is_no_file_or_no_text(cfg: Path) -> None:
    cfg.mkdir(parents=True)  # a folder where the file should be
    assert one_error(cli(QUESTION, "--dry-run")).startswith(f"cannot read the config file {cfg}")
    cfg.rmdir()
    cfg.write_bytes(b"model = '\xff\xfe'\n")
    assert one_error(cli(QUESTION, "--dry-run")) == f"{cfg}: not UTF-8 text (byte 9)"


def test_a_damaged_file_stops_the_commands_that_read_it_not_those_that_mend_it(cfg: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_text("# mine\nmodel = 'm'\ntemprature = 0.3\nxyzzy = 1\n", encoding="utf-8")
    for args in ([QUESTION, "--dry-run"], ["batch", "x.jsonl", "-o", "y.jsonl"],
                 ["eval", "quality", "r.jsonl"], ["config"]):  # fmt: skip
        assert "unknown key 'temprature'" in one_error(cli(*args))
    assert cli("logs").returncode == 0  # reads no key
    report = json.loads(cli("doctor", "--json").stdout)
    (check,) = [c for c in report["checks"] if c["name"] == "config"]
    assert check["status"] == "problem"
    assert check["data"]["unknown"] == ["temprature", "xyzzy"]
    assert "did you mean 'temperature'?" in check["found"]
    assert cli("config", "unset", "temprature").returncode == 0
    assert cli("config", "unset", "xyzzy").returncode == 0
    assert cfg.read_text(encoding="utf-8") == "# mine\nmodel = 'm'\n"  # the rest as written
    assert dry_run()["model"] == "m"


# -- config set, unset, edit, and a run that uses them -------------------------------------


@pytest.mark.slow
def test_config_set_then_a_run_that_uses_it(cfg: Path) -> None:
    script = Script(text=TEXT, prompt=build_request(QUESTION).prompt, api_key="secret-1")
    with ScriptedServer(script) as srv:
        for key, value in [
            ("servers.box.url", srv.url),
            ("servers.box.api_key_env", "BOX_KEY"),
            ("server", "box"),
            ("temperature", "0.25"),
            ("max_rounds", "0"),
        ]:
            proc = cli("config", "set", key, value)
            assert proc.returncode == 0, proc.stderr  # fmt: skip
        shown = cli("config", env={"BOX_KEY": "secret-1"}).stdout
        proc = cli(QUESTION, env={"BOX_KEY": "secret-1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "# Tides\n\nThe sea climbs the harbour wall."
    (request,) = srv.completions
    assert request.body["temperature"] == 0.25
    assert request.headers["authorization"] == "Bearer secret-1"
    assert "secret-1" not in shown and "secret-1" not in cfg.read_text(encoding="utf-8")
    rows = {line.split()[0]: line.split()[1:] for line in shown.splitlines()[1:] if line[:1] != "["}
    assert rows["temperature"] == ["0.25", "config", "file"]
    assert rows["top_p"] == ["0.95", "default"]
    assert "api key: $BOX_KEY" in shown


def test_config_set_checks_before_it_writes(cfg: Path) -> None:
    assert cli("config", "set", "temperature", "0.2").returncode == 0
    before = cfg.read_text(encoding="utf-8")
    assert one_error(cli("config", "set", "temperature", "warm")) == (
        "temperature: expected a number, not 'warm'"
    )
    assert one_error(cli("config", "set", "temprature", "0.1")).endswith(
        "unknown key 'temprature' (did you mean 'temperature'?)"
    )
    assert one_error(cli("config", "set", "engine", "tpu")).startswith("engine: expected one of")
    assert one_error(cli("config", "set", "api_key_env", "sk-123")).endswith("not the key itself")
    assert cfg.read_text(encoding="utf-8") == before
    assert cli("config", "set", "server", "http://a:1, http://b:2").returncode == 0
    assert cli("config", "set", "think", "no").returncode == 0
    assert cfg.read_text(encoding="utf-8") == (
        'temperature = 0.2\nserver = ["http://a:1", "http://b:2"]\nthink = false\n'
    )
    proc = cli("config", "unset", "seed")
    assert proc.returncode == 0 and "not set" in proc.stderr


def test_config_edit_saves_only_what_checks_out(cfg: Path, tmp_path: Path) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text("import os, sys\nopen(sys.argv[1], 'w').write(os.environ['NEW'])\n")
    command = f"{sys.executable} {editor}"
    proc = cli("config", "edit", env={"EDITOR": command, "NEW": "temperature = 0.2\n"})
    assert proc.returncode == 0, proc.stderr
    assert cfg.read_text(encoding="utf-8") == "temperature = 0.2\n"
    error = one_error(cli("config", "edit", env={"EDITOR": command, "NEW": "temperture = 1\n"}))
    assert error.startswith(f"{cfg}: unknown key 'temperture' (did you mean 'temperature'?)")
    kept = Path(error.rpartition("the edit is kept in ")[2])
    assert kept.read_text(encoding="utf-8") == "temperture = 1\n"
    assert cfg.read_text(encoding="utf-8") == "temperature = 0.2\n"


def test_config_shows_each_source_and_json(cfg: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_text('model = "m"\n[servers.gpu]\nurl = "http://u:p@gpu:8000"\n')
    report = json.loads(cli("config", "--json", env={"LONGWRITE_SEED": "7"}).stdout)
    settings = report["settings"]
    assert settings["model"] == {"value": "m", "source": "config file", "env": "LONGWRITE_MODEL"}
    assert settings["seed"]["value"] == "7" and settings["seed"]["source"] == "environment"
    assert settings["temperature"]["source"] == "default"
    assert report["servers"]["gpu"]["url"] == "http://gpu:8000"  # no password shown
    assert report["path"] == str(cfg) and report["exists"] is True


# -- named servers ---------------------------------------------------------------------------


def test_a_server_name_not_in_the_file_is_refused_with_the_nearest(cfg: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[servers.gpu]\nurl = "http://127.0.0.1:1"\n')
    error = one_error(cli(QUESTION, "--server", "gpuu"))
    assert error.startswith(
        "--server gpuu: no [servers.gpuu] in the config file (did you mean 'gpu'?)"
    )


def test_servers_file_names_servers_and_keys_must_agree(cfg: Path, tmp_path: Path) -> None:
    cfg.parent.mkdir(parents=True)
    a, b = closed_port(), closed_port()
    cfg.write_text(
        f'[servers.a]\nurl = "http://127.0.0.1:{a}"\napi_key_env = "KEY_A"\n'
        f'[servers.b]\nurl = "http://127.0.0.1:{b}"\napi_key_env = "KEY_B"\n'
    )
    (tmp_path / "in.jsonl").write_text('{"prompt": "p"}\n')
    (tmp_path / "servers.txt").write_text("a  # the first\nb\n")
    batch = ["batch", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"),
             "--servers-file", str(tmp_path / "servers.txt")]  # fmt: skip
    assert one_error(cli(*batch)).startswith("these servers take their keys from different "
                                             "variables (KEY_A, KEY_B)")  # fmt: skip
    proc = cli(*batch, env={"LONGWRITE_API_KEY": "k"})  # one key for all: both are asked
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line.split(": cannot")[0] for line in proc.stderr.splitlines()] == [
        f"longwrite: warning: skipping http://127.0.0.1:{a}",
        f"longwrite: warning: skipping http://127.0.0.1:{b}",
        "longwrite: error: no server could be reached (2 tried)",
    ]
    error = one_error(cli(QUESTION, "--server", "a"))
    assert error.startswith("the config file says the API key is in $KEY_A, which is not set")
