"""The scripted OpenAI-compatible server (tests/sse_server.py) in a process of its own.

Why: a benchmark that charges a client for the CPU it uses must not run the server in the
client's process. There the server's threads share the interpreter (and its lock) with the
client, so the client's own cost is diluted by the server's and its throughput is capped by
both together. In a separate process the client's CPU time (time.process_time, or the
rusage of a child) is the client's alone.

`with serving(text=..., pieces=(4,), delay=0.01) as url:` starts
`python bench/scripted_server.py`, sends it the `Script` fields as one JSON line on stdin,
reads back the URL it prints, and stops it by closing its stdin. This file is a helper of
the benchmarks, not one of them.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def serving(**script: Any) -> Iterator[str]:
    """Serve `Script(**script)` from a child process; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, __file__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps(script) + "\n")
        proc.stdin.flush()
        url = proc.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the scripted server did not start (it said {url!r})")
        yield url
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from sse_server import Script, ScriptedServer

    fields = json.loads(sys.stdin.readline())
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    with ScriptedServer(Script(**fields)) as server:
        print(server.url, flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin


if __name__ == "__main__":
    main()
