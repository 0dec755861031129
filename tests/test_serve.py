"""`longwrite serve`: the vllm command line, the API-key rules, and the run with a fake `vllm`.

The fake `vllm` is a small Python script put first on PATH: it records its arguments and
environment, serves GET /v1/models on the port it is given (127.0.0.1 only) and exits on
SIGINT, so the whole start / ready / Ctrl-C cycle runs for real without a GPU.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import longwrite.engines.vllm as vllm_engine
from longwrite.engines.base import DEFAULT_MODEL
from longwrite.errors import LongwriteError
from longwrite.serve import (
    EXIT_INTERRUPTED,
    api_key_from,
    build_serve_command,
    check_exposure,
    child_env,
    is_loopback,
    probe,
    serve_command,
    server_url,
    stop_child,
)

KEY = "sk-test-3f9a1c"  # a made-up key: it must never show on a command line or in output

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def _app() -> typer.Typer:
    """A Typer app with `serve` registered the way the CLI registers it."""
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Root (so that `serve` is a subcommand, as in the real CLI)."""

    app.command("serve", context_settings=CONTEXT)(serve_command)
    return app


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("LONGWRITE_API_KEY", raising=False)
    monkeypatch.delenv("VLLM_API_KEY", raising=False)


def _dry_run(*args: str) -> list[str]:
    result = CliRunner().invoke(_app(), ["serve", "--dry-run", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def _refused(*args: str) -> LongwriteError:
    result = CliRunner().invoke(_app(), ["serve", "--dry-run", *args])
    assert isinstance(result.exception, LongwriteError), (result.output, result.exception)
    assert result.exception.exit_code == 2
    assert "\n" not in str(result.exception)
    assert result.stdout == ""  # nothing printed, nothing started
    return result.exception


def test_default_command_has_the_model_flags():
    assert build_serve_command(tp=2, served_model_name=None, extra=[]) == [
        "vllm", "serve", DEFAULT_MODEL,
        "--tensor-parallel-size", "2",
        "--port", "8000", "--host", "127.0.0.1", "--max-model-len", "32768",
        "--generation-config", "vllm", "--enable-prefix-caching",
    ]  # fmt: skip


def test_no_tp_leaves_it_to_vllm():
    cmd = build_serve_command(tp=None, served_model_name=None, extra=[])
    assert "--tensor-parallel-size" not in cmd


TAIL = ["--generation-config", "vllm", "--enable-prefix-caching"]


def test_dp_runs_replicas_of_tp_gpus_behind_one_url(no_key, monkeypatch):
    monkeypatch.setattr(vllm_engine, "gpu_count", lambda: 0)
    cmd = _dry_run("--dp", "2", "--tp", "2")
    assert cmd[:7] == ["vllm", "serve", DEFAULT_MODEL, "--tensor-parallel-size", "2",
                       "--data-parallel-size", "2"]  # fmt: skip
    assert "--data-parallel-size" not in _dry_run("--dp", "1", "--tp", "2")


def test_dp_shares_the_visible_gpus_between_the_replicas(no_key, monkeypatch):
    monkeypatch.setattr(vllm_engine, "gpu_count", lambda: 8)
    cmd = _dry_run("--dp", "2")
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "4"
    assert cmd[cmd.index("--data-parallel-size") + 1] == "2"
    monkeypatch.setattr(vllm_engine, "gpu_count", lambda: 4)
    assert "needs 8 GPUs and 4 are visible" in str(_refused("--dp", "2", "--tp", "4"))
    # replicas that span machines: each node runs its share
    cmd = _dry_run("--dp", "4", "--tp", "2", "--", "--data-parallel-size-local", "2")
    assert cmd[-2:] == ["--data-parallel-size-local", "2"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--tp", "4", "--port", "8123", "--max-model-len", "65536"],
            ["vllm", "serve", DEFAULT_MODEL, "--tensor-parallel-size", "4", "--port", "8123",
             "--host", "127.0.0.1", "--max-model-len", "65536", *TAIL],
        ),
        (
            ["--tp", "1", "--served-model-name", "lwz", "--host", "localhost"],
            ["vllm", "serve", DEFAULT_MODEL, "--tensor-parallel-size", "1", "--port", "8000",
             "--host", "localhost", "--max-model-len", "32768", "--served-model-name", "lwz",
             *TAIL],
        ),
        (
            ["--tp", "8", "-m", "/models/my lwz"],
            ["vllm", "serve", "/models/my lwz", "--tensor-parallel-size", "8", "--port", "8000",
             "--host", "127.0.0.1", "--max-model-len", "32768", *TAIL],
        ),
    ],
)  # fmt: skip
def test_dry_run_prints_the_command(no_key, args, expected):
    assert _dry_run(*args) == expected


def test_arguments_after_double_dash_go_to_vllm_verbatim(no_key):
    extra = ["--enforce-eager", "--dtype", "bfloat16", "--kv-cache-dtype=fp8", "a b"]
    cmd = _dry_run("--tp", "2", "--", *extra)
    assert cmd[-len(extra) :] == extra
    assert cmd[2] == DEFAULT_MODEL


def test_default_tp_follows_the_visible_gpus(no_key, monkeypatch):
    monkeypatch.setattr(vllm_engine, "gpu_count", lambda: 6)
    cmd = _dry_run()
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "4"  # heads split over powers of two
    monkeypatch.setattr(vllm_engine, "gpu_count", lambda: 0)
    assert "--tensor-parallel-size" not in _dry_run()


@pytest.mark.parametrize(
    "flag",
    [
        "--port",
        "--host=0.0.0.0",
        "--max_model_len",
        "-tp",
        "--api-key",
        "--served-model-name",
        "--data-parallel-size=2",
        "-dp",
    ],
)
def test_own_flags_after_double_dash_are_refused(no_key, flag):
    error = _refused("--tp", "1", "--", "--enforce-eager", flag, "1")
    assert flag.split("=")[0].replace("_", "-") in str(error)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_key(host):
    assert is_loopback(host)
    check_exposure(host, api_key_set=False, insecure=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "gpu-box", ""])
def test_reachable_host_without_key_is_refused(no_key, host):
    assert not is_loopback(host)
    error = _refused("--tp", "1", "--host", host)
    assert "LONGWRITE_API_KEY" in str(error) and "--insecure" in str(error)


def test_reachable_host_with_a_key_or_insecure_is_allowed(no_key, monkeypatch):
    cmd = _dry_run("--tp", "1", "--host", "0.0.0.0", "--insecure")
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    monkeypatch.setenv("LONGWRITE_API_KEY", KEY)
    result = CliRunner().invoke(_app(), ["serve", "--dry-run", "--tp", "1", "--host", "0.0.0.0"])
    assert result.exit_code == 0
    assert KEY not in result.output  # stdout and stderr
    assert "--api-key" not in result.stdout
    assert "VLLM_API_KEY" in result.stderr


def test_the_key_goes_through_the_environment():
    assert api_key_from({"LONGWRITE_API_KEY": KEY, "VLLM_API_KEY": "other"}) == KEY
    assert api_key_from({"VLLM_API_KEY": "other"}) == "other"
    assert api_key_from({"LONGWRITE_API_KEY": ""}) is None
    env = child_env({"PATH": "/bin", "VLLM_API_KEY": "other"}, KEY)
    assert env == {"PATH": "/bin", "VLLM_API_KEY": KEY}
    assert child_env({"PATH": "/bin"}, None) == {"PATH": "/bin"}


def test_port_out_of_range_is_a_usage_error(no_key):
    result = CliRunner().invoke(_app(), ["serve", "--dry-run", "--port", "70000"])
    assert result.exit_code == 2


def test_urls_reach_wildcard_binds_through_the_loopback():
    assert server_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert server_url("0.0.0.0", 9000) == "http://127.0.0.1:9000"
    assert server_url("::", 80) == "http://[::1]:80"
    assert server_url("[::1]", 81) == "http://[::1]:81"


class _Models(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        ok = self.path == "/v1/models" and self.headers.get("Authorization") == f"Bearer {KEY}"
        self.send_response(200 if ok else 401)
        self.end_headers()
        self.wfile.write(b'{"data": []}')

    def log_message(self, *args: object) -> None:
        pass


def test_probe_wants_200_from_v1_models_with_the_key():
    server = HTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert probe(url, KEY)
        assert not probe(url, "wrong")
        assert not probe(url, None)
    finally:
        server.shutdown()
        server.server_close()
    assert not probe(url, KEY)  # nothing listens any more


def _child(code: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"  # its signal handlers are in place
    return proc


def test_stop_child_escalates_when_sigint_is_ignored():
    proc = _child(
        "import signal, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    assert stop_child(proc, grace_s=0.3, term_s=5) == -signal.SIGTERM
    assert time.monotonic() - started < 5


def test_stop_child_kills_what_ignores_sigint_and_sigterm():
    proc = _child(
        "import signal, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    assert stop_child(proc, grace_s=0.2, term_s=0.2) == -signal.SIGKILL


def test_stop_child_stops_at_sigint_when_that_is_enough():
    proc = _child(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *a: sys.exit(0))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    assert stop_child(proc, grace_s=10, term_s=10) == 0


def test_stop_child_sends_no_second_sigint_after_the_terminals():
    proc = _child(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *a: sys.exit(9))\n"
        "print('ready', flush=True)\n"
        "time.sleep(0.5)\n"
        "sys.exit(4)\n"
    )
    assert stop_child(proc, grace_s=10, term_s=10, sigint_sent=True) == 4  # not 9: no SIGINT


# The fake `vllm`: records argv, VLLM_API_KEY and its pid; FAKE_VLLM_EXIT makes it fail at once;
# otherwise it serves /v1/models (checking the key, as vLLM does) until SIGINT.
FAKE_VLLM = textwrap.dedent(
    """\
    import json, os, signal, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    record = os.environ["FAKE_VLLM_RECORD"]
    def note(**items):
        data = json.load(open(record)) if os.path.exists(record) else {}
        data.update(items)
        with open(record, "w") as f:
            json.dump(data, f)

    note(argv=sys.argv[1:], key=os.environ.get("VLLM_API_KEY"), pid=os.getpid())
    print("fake vllm: loading weights", flush=True)
    if os.environ.get("FAKE_VLLM_EXIT"):
        print("fake vllm: out of memory", flush=True)
        sys.exit(int(os.environ["FAKE_VLLM_EXIT"]))
    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1])
    key = os.environ.get("VLLM_API_KEY")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if key and self.headers.get("Authorization") != "Bearer " + key:
                self.send_response(401)
            else:
                self.send_response(200 if self.path == "/v1/models" else 404)
            self.end_headers()
            self.wfile.write(b'{"object": "list", "data": []}')
        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)
    def on_sigint(signum, frame):
        note(sigint=True)
        os._exit(0)
    signal.signal(signal.SIGINT, on_sigint)
    note(listening=True)
    server.serve_forever()
    """
)

# `serve` registered on the real CLI as the lead registers it (once registered there, as is),
# run through `longwrite.cli.app.main`, so errors and exit codes are the CLI's. SIGINT is
# restored to Python's default: a test runner started in the background may have ignored
# it, and children
# inherit that.
SERVE_MAIN = textwrap.dedent(
    """\
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from longwrite.cli import app as cli
    from longwrite.serve import serve_command
    if not any(c.callback is serve_command for c in cli.app.registered_commands):
        cli.app.command("serve", context_settings=CONTEXT)(serve_command)
    cli.main(["serve", *sys.argv[1:]])
    """
).replace("CONTEXT", repr(CONTEXT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path: Path, args: list[str], **env: str) -> tuple[subprocess.Popen, Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "vllm"
    fake.write_text(f"#!{sys.executable}\n{FAKE_VLLM}")
    fake.chmod(0o755)
    record = tmp_path / "record.json"
    environ = {
        k: v for k, v in os.environ.items() if k not in ("LONGWRITE_API_KEY", "VLLM_API_KEY")
    }
    environ.update(env, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    environ["FAKE_VLLM_RECORD"] = str(record)
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_MAIN, *args],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # no controlling terminal: our SIGINT is the only one it gets
    )
    return proc, record


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_prints_the_export_line_when_ready_and_ctrl_c_stops_vllm(tmp_path):
    port = _free_port()
    args = ["--tp", "2", "--port", str(port), "--served-model-name", "lwz", "--", "--enforce-eager"]
    proc, record = _serve(tmp_path, args, LONGWRITE_API_KEY=KEY)
    try:
        ready = {}

        def read_first_line() -> None:
            ready["line"] = proc.stdout.readline()

        reader = threading.Thread(target=read_first_line, daemon=True)
        reader.start()
        reader.join(20)
        assert ready.get("line") == f"export LONGWRITE_SERVER=http://127.0.0.1:{port}\n"
        seen = json.loads(record.read_text())
        assert seen["listening"]  # the line came once the server was up, not before
        assert KEY not in seen["argv"] and "--api-key" not in seen["argv"]
        assert seen["key"] == KEY
        assert (
            seen["argv"]
            == build_serve_command(
                tp=2, port=port, served_model_name="lwz", extra=["--enforce-eager"]
            )[1:]
        )
        assert _pid_alive(seen["pid"])

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED
    assert json.loads(record.read_text()).get("sigint") is True
    assert not _pid_alive(seen["pid"])
    assert "fake vllm: loading weights" in err  # vLLM's output is passed through, on stderr
    assert "LONGWRITE_API_KEY" in err and KEY not in err + out


def test_vllm_failing_before_ready_exits_1_with_one_line(tmp_path):
    proc, record = _serve(tmp_path, ["--tp", "1", "--port", str(_free_port())], FAKE_VLLM_EXIT="3")
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert out == ""
    errors = [line for line in err.splitlines() if line.startswith("longwrite: error:")]
    assert errors == [
        "longwrite: error: vLLM exited with code 3 before it was ready (its output is above)"
    ]
    assert "fake vllm: out of memory" in err


def test_missing_vllm_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    from longwrite import serve

    monkeypatch.setenv("PATH", str(tmp_path))  # no vllm on PATH
    monkeypatch.setattr(serve.sys, "executable", str(tmp_path / "python"))  # none beside it
    with pytest.raises(LongwriteError, match=r"pip install 'longwrite\[vllm\]'") as caught:
        serve.find_vllm(os.environ)
    assert "\n" not in str(caught.value)


def test_a_missing_local_model_is_one_line_before_anything_starts(no_key, tmp_path):
    result = CliRunner().invoke(_app(), ["serve", "--tp", "1", "-m", str(tmp_path / "nope")])
    assert isinstance(result.exception, LongwriteError)
    assert str(result.exception) == f"model not found: {tmp_path / 'nope'} (no such folder)"


def test_sigterm_stops_vllm_too(tmp_path):
    proc, record = _serve(tmp_path, ["--tp", "1", "--port", str(_free_port())])
    try:
        assert proc.stdout.readline().startswith("export LONGWRITE_SERVER=")
        pid = json.loads(record.read_text())["pid"]
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    assert json.loads(record.read_text()).get("sigint") is True  # stopped the gentle way
    assert not _pid_alive(pid)


def test_serve_takes_its_defaults_from_the_config_file_then_the_environment_then_flags(tmp_path):
    """flag > environment > config file > built-in default, for `serve` too."""
    import subprocess
    import sys

    config = tmp_path / "config.toml"
    config.write_text('model = "org/my-model"\ntp = 2\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LONGWRITE_")}
    env["LONGWRITE_CONFIG"] = str(config)

    def dry(*args: str, **extra: str) -> str:
        argv = [sys.executable, "-m", "longwrite", "serve", "--dry-run", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, env={**env, **extra})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "vllm serve org/my-model --tensor-parallel-size 2 " in dry()
    assert "--tensor-parallel-size 4 " in dry(LONGWRITE_TP="4")
    assert "--tensor-parallel-size 1 " in dry("--tp", "1", LONGWRITE_TP="4")
