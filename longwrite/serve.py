"""`longwrite serve`: vLLM's OpenAI-compatible server for LongWriter-Zero, with the right flags.

The flags that matter for this model are easy to get wrong by hand: tensor parallelism over
the GPUs, data parallelism (`--dp N`: N replicas behind one URL, each over `--tp` GPUs, so one
endpoint spans a node's GPUs and vLLM balances the requests), the context length,
`--generation-config vllm` (so that only the client's sampling settings apply, never the
model's generation_config.json), and prefix caching (a continuation re-sends the prompt plus
the text so far). `build_serve_command` builds that command line as a pure function,
`--dry-run` prints it, and it runs as an argument list, never through a shell.

The API key (LONGWRITE_API_KEY) reaches vLLM as VLLM_API_KEY in its environment, never on its
command line, where `ps` would show it. A server on a non-loopback address without a key is
refused unless `--insecure` says so.

While vLLM starts (minutes for a 32B model) a spinner runs on stderr and vLLM's own output is
passed through to stderr; stdout gets only the line to paste: `export LONGWRITE_SERVER=...`.
Ctrl-C stops the server (SIGINT, then SIGTERM, then SIGKILL) and exits with 130.

Only the standard library and typer are imported at module level: the CLI imports this module
to register the command, and `longwrite --help` must stay light.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Annotated

import typer

from longwrite.cli import options as opt
from longwrite.engines.base import (
    DEFAULT_MODEL,
    ENV_API_KEY,
    ENV_SERVER,
    MODEL_CONTEXT,
    is_loopback,
)
from longwrite.errors import EXIT_INTERRUPTED, LongwriteError

DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_MODEL_LEN = MODEL_CONTEXT
VLLM_API_KEY_ENV = "VLLM_API_KEY"
INSTALL_HINT = "install the vllm extra: pip install 'longwrite[vllm]'"
EXIT_TERMINATED = 128 + signal.SIGTERM
POLL_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 2.0
STOP_GRACE_S = 30.0  # after SIGINT, how long vLLM may take to shut down before SIGTERM
STOP_TERM_S = 10.0  # after SIGTERM, before SIGKILL

# Flags `longwrite serve` sets itself: after `--` they would silently override ours (vLLM takes
# the last one), so they are refused there with the option to use instead.
OWN_FLAGS = {
    "--host": "--host",
    "--port": "--port",
    "--tensor-parallel-size": "--tp",
    "-tp": "--tp",
    "--data-parallel-size": "--dp",
    "-dp": "--dp",
    "--max-model-len": "--max-model-len",
    "--served-model-name": "--served-model-name",
    "--api-key": f"the {ENV_API_KEY} environment variable",
}


class ServeError(LongwriteError):
    """vLLM itself failed (exited with an error): exit 1, not the usage error's 2."""

    exit_code = 1


def build_serve_command(
    *,
    model: str = DEFAULT_MODEL,
    tp: int | None,
    dp: int = 1,
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    served_model_name: str | None,
    extra: list[str],
) -> list[str]:
    """The `vllm serve` argument list. `tp=None` leaves the tensor-parallel size to vLLM;
    `dp` > 1 runs that many replicas (data parallel), each over `tp` GPUs."""
    cmd = ["vllm", "serve", model]
    if tp is not None:
        cmd += ["--tensor-parallel-size", str(tp)]
    if dp > 1:
        cmd += ["--data-parallel-size", str(dp)]
    cmd += ["--port", str(port), "--host", host, "--max-model-len", str(max_model_len)]
    if served_model_name:
        cmd += ["--served-model-name", served_model_name]
    cmd += ["--generation-config", "vllm", "--enable-prefix-caching"]
    return cmd + list(extra)


def check_extra(extra: list[str]) -> None:
    """Refuse, after `--`, a flag that `longwrite serve` sets itself."""
    for arg in extra:
        if not arg.startswith("-"):
            continue
        name = arg.split("=", 1)[0]
        if name.startswith("--"):
            name = "--" + name[2:].replace("_", "-")  # vLLM reads --max_model_len too
        if name in OWN_FLAGS:
            raise LongwriteError(
                f"{name} after -- would override longwrite serve's own: use {OWN_FLAGS[name]}"
            )


def check_exposure(host: str, *, api_key_set: bool, insecure: bool) -> None:
    """Refuse to serve on a reachable address without an API key, unless asked to."""
    if is_loopback(host) or api_key_set or insecure:
        return
    raise LongwriteError(
        f"--host {host} lets other machines use the server: set {ENV_API_KEY}, "
        "or pass --insecure to serve without a key"
    )


def api_key_from(environ: Mapping[str, str]) -> str | None:
    """The key the server will require: LONGWRITE_API_KEY, else an existing VLLM_API_KEY (a
    key of only spaces is no key: it would let anyone in who sends spaces)."""
    given = environ.get(ENV_API_KEY, "").strip() or environ.get(VLLM_API_KEY_ENV, "").strip()
    return given or None


def child_env(environ: Mapping[str, str], api_key: str | None) -> dict[str, str]:
    """vLLM's environment: ours, with the key as VLLM_API_KEY (vLLM reads it there)."""
    env = dict(environ)
    if api_key:
        env[VLLM_API_KEY_ENV] = api_key
    return env


def connect_host(host: str) -> str:
    """Where to reach a server bound to `host` from this machine (wildcards: the loopback)."""
    name = host.strip().strip("[]")
    if name in ("", "0.0.0.0"):
        return "127.0.0.1"
    if name == "::":
        return "::1"
    return name


def server_url(host: str, port: int) -> str:
    name = connect_host(host)
    return f"http://[{name}]:{port}" if ":" in name else f"http://{name}:{port}"


def find_vllm(environ: Mapping[str, str]) -> str:
    """The `vllm` executable: on PATH, else next to this Python (an unactivated venv)."""
    found = shutil.which("vllm", path=environ.get("PATH"))
    if found:
        return found
    beside = Path(sys.executable).parent / "vllm"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise LongwriteError(f"`vllm` is not installed here (not on PATH): {INSTALL_HINT}")


def probe(url: str, api_key: str | None, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the server at `url` answers GET /v1/models with 200 (its model is loaded)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url + "/v1/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    # No proxy: the server is on this machine, and a proxy from the environment must not see it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until_ready(
    proc: subprocess.Popen, url: str, api_key: str | None, interval: float = POLL_INTERVAL_S
) -> bool:
    """Poll until the server answers (True) or the process exits first (False)."""
    while proc.poll() is None:
        if probe(url, api_key):
            return True
        time.sleep(interval)
    return False


def stop_child(
    proc: subprocess.Popen,
    grace_s: float = STOP_GRACE_S,
    term_s: float = STOP_TERM_S,
    *,
    sigint_sent: bool = False,
) -> int:
    """Stop the server: SIGINT (vLLM shuts down cleanly), then SIGTERM, then SIGKILL.

    With `sigint_sent` the child already has its SIGINT (the terminal's Ctrl-C reaches the whole
    foreground process group): a second one would make vLLM skip its clean shutdown. Another
    Ctrl-C while waiting moves on to the next signal at once.
    """
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, term_s)):
        if proc.poll() is not None:
            return proc.returncode
        if not (sig == signal.SIGINT and sigint_sent):
            proc.send_signal(sig)
        try:
            return proc.wait(wait_s)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            pass
    proc.kill()
    return proc.wait()


def relay(source: IO[bytes], write: Callable[[str], None]) -> None:
    """Copy the child's output, line by line, to `write` until it closes."""
    for line in iter(source.readline, b""):
        # Keep draining even when our stderr is gone (`2>&1 | head`): a full pipe would stall vLLM.
        with contextlib.suppress(OSError, ValueError):
            write(line.decode("utf-8", errors="replace"))
    source.close()


def _to_stderr(text: str) -> None:
    # sys.stderr is looked up each time: while the spinner runs, rich puts a proxy there that
    # prints above the spinner.
    sys.stderr.write(text)
    sys.stderr.flush()


def _say(message: str) -> None:
    _to_stderr(f"longwrite: {message}\n")


def ctrl_c_reached_the_group() -> bool:
    """Whether a SIGINT here came from our terminal's Ctrl-C, which vLLM (in our process group)
    received as well: true when we are the terminal's foreground process group."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:  # no controlling terminal: the signal was sent to us alone
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


class _Stopped(Exception):
    """SIGTERM arrived: stop the server as for Ctrl-C (so that no server outlives us)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Stopped


class _starting:
    """A spinner on stderr while vLLM starts (a terminal only; otherwise one plain line)."""

    def __init__(self, message: str) -> None:
        self.message = message
        self._status = None

    def __enter__(self) -> None:
        if sys.stderr.isatty():
            from rich.console import Console

            self._status = Console(stderr=True).status(self.message)
            self._status.__enter__()
        else:
            _say(self.message)

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)
            self._status = None


def _resolve_tp(tp: int | None, dp: int, extra: list[str]) -> int | None:
    """--tp, else the default for each of the `dp` replicas over the visible GPUs; None
    (vLLM's own default) without any. `dp` x `tp` more than the visible GPUs is refused,
    unless the replicas span machines (`--data-parallel-size-local` after --)."""
    from longwrite.engines.vllm import default_tp, gpu_count

    gpus = gpu_count()
    if tp is None:
        return default_tp(max(1, gpus // dp)) if gpus else None
    spans_nodes = any(a.split("=", 1)[0] in ("--data-parallel-size-local", "-dpl") for a in extra)
    if gpus and dp * tp > gpus and not spans_nodes:
        raise LongwriteError(
            f"--dp {dp} x --tp {tp} needs {dp * tp} GPUs and {gpus} are visible "
            "(across machines: add -- --data-parallel-size-local N, as the README shows)"
        )
    return tp


@opt.declared
def serve_command(
    ctx: typer.Context,
    *,
    model: opt.Model,
    tp: opt.Tp,
    max_model_len: opt.MaxModelLen,
    dp: Annotated[
        int,
        typer.Option(
            "--dp", min=1, help="Data-parallel replicas behind one URL, each over --tp GPUs."
        ),
    ] = 1,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")
    ] = DEFAULT_PORT,
    host: Annotated[
        str,
        typer.Option("--host", help=f"Address to listen on (not loopback: needs {ENV_API_KEY})."),
    ] = DEFAULT_HOST,
    served_model_name: Annotated[
        str | None,
        typer.Option("--served-model-name", help="Model name clients use (default: the model id)."),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Allow a non-loopback --host without an API key."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the vllm command and exit; start nothing.")
    ] = False,
) -> None:
    """Start vLLM's OpenAI-compatible server for LongWriter-Zero; arguments after -- go to vLLM.

    The API key comes from LONGWRITE_API_KEY and reaches vLLM as VLLM_API_KEY.
    """
    extra = list(ctx.args)
    check_extra(extra)
    model = model or DEFAULT_MODEL  # the setting's None means "the server's", here it is ours
    if (tp is not None and tp < 1) or max_model_len < 1:
        raise LongwriteError("--tp and --max-model-len must be 1 or more")
    api_key = api_key_from(os.environ)
    check_exposure(host, api_key_set=api_key is not None, insecure=insecure)
    cmd = build_serve_command(
        model=model,
        tp=_resolve_tp(tp, dp, extra),
        dp=dp,
        port=port,
        host=host,
        max_model_len=max_model_len,
        served_model_name=served_model_name,
        extra=extra,
    )
    if dry_run:
        typer.echo(shlex.join(cmd))
        if api_key:
            _say(f"the API key goes to vLLM as {VLLM_API_KEY_ENV} in its environment")
        return
    from longwrite.engines.loading import resolve_model_path

    cmd[2] = resolve_model_path(model)  # a missing local folder: one line now, not minutes later
    code = run_server(cmd, host=host, port=port, api_key=api_key)
    if code:
        raise typer.Exit(code)


def run_server(cmd: list[str], *, host: str, port: int, api_key: str | None) -> int:
    """Run `cmd` until it exits or is stopped; the exit code for `longwrite serve`.

    0 when vLLM exits by itself, 130 after Ctrl-C, 143 after SIGTERM (vLLM is stopped first).

    vLLM failing raises ServeError (exit 1).
    """
    env = child_env(os.environ, api_key)
    executable = find_vllm(env)
    url = server_url(host, port)
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (an embedding caller): leave signals alone
        previous = None
    proc: subprocess.Popen | None = None
    relay_thread: threading.Thread | None = None
    try:
        proc = subprocess.Popen(
            [executable, *cmd[1:]],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        relay_thread = threading.Thread(
            target=relay, args=(proc.stdout, _to_stderr), name="longwrite-vllm-log", daemon=True
        )
        relay_thread.start()
        with _starting(f"vLLM is loading {cmd[2]} (minutes for a large model)"):
            ready = wait_until_ready(proc, url, api_key)
        if not ready:
            raise ServeError(_exit_message(proc.wait(), before_ready=True))
        if api_key:
            _say(f"clients need the key too: export {ENV_API_KEY}=... (the key set here)")
        if connect_host(host) != host.strip().strip("[]"):
            _say(f"listening on every interface: from elsewhere, use this machine's name:{port}")
        typer.echo(f"export {ENV_SERVER}={url}")  # last: the line to paste
        code = proc.wait()
        if code:
            raise ServeError(_exit_message(code, before_ready=False))
        _say("vLLM exited")
        return 0
    except (KeyboardInterrupt, _Stopped) as stop:
        if proc is not None:
            _say("stopping vLLM (Ctrl-C again to hurry it)")
            by_terminal = isinstance(stop, KeyboardInterrupt) and ctrl_c_reached_the_group()
            stop_child(proc, sigint_sent=by_terminal)
        _say("stopped")
        return EXIT_INTERRUPTED if isinstance(stop, KeyboardInterrupt) else EXIT_TERMINATED
    finally:
        if proc is not None and proc.poll() is None:  # an unexpected error: leave no server
            stop_child(proc, grace_s=5.0)
        if relay_thread is not None:
            relay_thread.join(5.0)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_message(code: int, *, before_ready: bool) -> str:
    when = "before it was ready" if before_ready else ""
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return " ".join(filter(None, ["vLLM", how, when])) + " (its output is above)"
