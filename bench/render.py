"""Benchmark: what the terminal display costs while a model writes at 100 tokens/s.

Run from the repository root: `python bench/render.py` (about two and a half minutes).

The display's work is paid per refresh, and refreshes are throttled by time, so streaming a
document faster than a model writes it would skip most of them and flatter the renderer.
Both measurements below keep the real pace: one token every 10 ms.

The stream: a short plan in `<think>`, then a 10,000-word Markdown document (headings,
paragraphs, lists, bold) after `<answer>`, cut into deltas of 1-7 characters (4 on average,
as an English tokenizer does), one token each: about 13,500 tokens, 135 s at 100 tokens/s.

1. In process, simulated clock: ThinkAnswerParser + Renderer with a clock that moves on
   10 ms per token, so every time-throttled refresh a user would pay for happens, in a few
   seconds of wall time. Both streams are 100x40 terminals (Markdown, live area, status
   line). The figure is CPU seconds over generation seconds (tokens / 100), best of RUNS;
   also the cost per delta by 10% of the stream, whose growth (last / first) must stay
   <= 2: the cost per delta does not grow with the document.
2. End to end: the real CLI (`python -m longwrite PROMPT --server URL`) against the scripted
   OpenAI-compatible server (tests/sse_server.py) in a process of its own, sending one token
   every 10 ms. Two CLIs run at once on the same stream: one with stdout and stderr on a
   100x40 pseudo-terminal, one with both on pipes (raw text, no live area). The ratio
   R = (CPU seconds of the terminal CLI - CPU seconds of the piped CLI) / generation
   seconds. Goal R <= 0.005: the display costs at most 0.5% of the time it takes to write.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripted_server import serving  # noqa: E402

from longwrite.display.renderer import Renderer, RenderOptions  # noqa: E402
from longwrite.generate.job import WriteOptions, resolve_request  # noqa: E402
from longwrite.generate.parser import ThinkAnswerParser  # noqa: E402
from longwrite.io.counting import count_words  # noqa: E402

TARGET_WORDS = 10_000
PROMPT = "Write a 10,000-word report on urban heat islands."
PACE = 100.0  # tokens per second
WIDTH, HEIGHT = 100, 40
RUNS = 3  # the in-process pipeline is timed this many times; the best of each figure counts
GOAL = 0.005

VOCAB_TEXT = """
the of and to in a is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if so no will
more time about into can only other new some could these two may first then do any like my
now over such our man me even most made after also did many before must through back years
where much your way well down should because each just those people river mountain harvest
lantern archive signal quiet garden letter morning window memory engine theory history market
winter village journey promise shadow silver station
"""
VOCAB = VOCAB_TEXT.split()


class NullWriter:
    """A terminal-like sink that keeps only a character count."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


class SimClock:
    """The renderer's clock; the driver moves it on by one token's time per delta."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sentence(rng: random.Random) -> str:
    words = [rng.choice(VOCAB) for _ in range(rng.randint(8, 20))]
    text = " ".join(words)
    if rng.random() < 0.15:
        text = text.replace(words[2], f"**{words[2]}**", 1)
    return text[0].upper() + text[1:] + "."


def build_document(target: int = TARGET_WORDS, seed: int = 7) -> str:
    """Headings, paragraphs and lists until the document has `target` words."""
    rng = random.Random(seed)
    blocks: list[str] = ["# The Long Report"]
    words = count_words(blocks[0])
    section = 0
    while words < target:
        kind = rng.random()
        if kind < 0.1 or len(blocks) == 1:
            section += 1
            block = f"## Section {section}: {rng.choice(VOCAB).title()}"
        elif kind < 0.25:
            marker = rng.choice(["-", "1."])
            block = "\n".join(f"{marker} {sentence(rng)}" for _ in range(rng.randint(3, 6)))
        else:
            block = " ".join(sentence(rng) for _ in range(rng.randint(3, 7)))
        n = count_words(block)
        if words + n > target:  # last block: trim to hit the target exactly
            kept = block.split(" ")
            while count_words(" ".join(kept)) > target - words:
                kept.pop()
            block, n = " ".join(kept), count_words(" ".join(kept))
            if not block:
                break
        blocks.append(block)
        words += n
    return "\n\n".join(blocks) + "\n"


def build_stream(doc: str, seed: int = 3) -> str:
    """What the model writes after the prompt: a plan of a few sentences, then the answer."""
    rng = random.Random(seed)
    plan = " ".join(sentence(rng) for _ in range(12))
    return f"<think>Plan: {plan}</think>\n<answer>\n{doc}"


def token_sizes(text: str, seed: int = 11) -> list[int]:
    """Characters per token: 1-7, 4 on average."""
    rng = random.Random(seed)
    sizes, i = [], 0
    while i < len(text):
        sizes.append(rng.randint(1, 7))
        i += sizes[-1]
    return sizes


def deltas_of(text: str, sizes: list[int]) -> list[str]:
    out, i = [], 0
    for n in sizes:
        out.append(text[i : i + n])
        i += n
    return out


# -- 1. in process, simulated clock -----------------------------------------------------------


def run_pipeline(deltas: list[str]) -> tuple[float, list[float], Renderer]:
    """CPU seconds in all, CPU seconds per 10% of the deltas, and the renderer."""
    clock = SimClock()
    parser = ThinkAnswerParser()
    segments: list[float] = []
    bounds = [len(deltas) * k // 10 for k in range(11)]
    start = time.process_time()
    with Renderer(
        RenderOptions(target_words=TARGET_WORDS),
        stdout=NullWriter(),
        stderr=NullWriter(),
        stdout_tty=True,
        stderr_tty=True,
        width=WIDTH,
        height=HEIGHT,
        clock=clock,
    ) as renderer:
        for k in range(10):
            t = time.process_time()
            for delta in deltas[bounds[k] : bounds[k + 1]]:
                clock.now += 1 / PACE
                for event in parser.feed(delta):
                    renderer.handle(event)
                renderer.add_tokens(1)
            segments.append(time.process_time() - t)
        for event in parser.close("stop"):
            renderer.handle(event)
    return time.process_time() - start, segments, renderer


def in_process(deltas: list[str], words: int) -> float:
    runs = [run_pipeline(deltas) for _ in range(RUNS)]
    for _, _, renderer in runs:
        assert renderer.words == words, (renderer.words, words)
    total = min(t for t, _, _ in runs)
    segments = [min(s[k] for _, s, _ in runs) for k in range(10)]
    per_delta = [s / (len(deltas) / 10) * 1e6 for s in segments]
    generation = len(deltas) / PACE
    print(
        f"in process, simulated clock at {PACE:.0f} tok/s: parser + renderer on 100x40 "
        f"terminals {total:.3f} CPU s (best of {RUNS}) for {generation:.0f} s of generation, "
        f"ratio={total / generation:.4f}"
    )
    growth = segments[-1] / segments[0]
    print(
        "  CPU us per delta by 10% of the stream: "
        + " ".join(f"{x:.1f}" for x in per_delta)
        + f"; growth={growth:.2f} goal<=2"
    )
    return total / generation


# -- 2. end to end: the CLI on a pseudo-terminal vs into pipes ----------------------------------


def cli_env() -> dict[str, str]:
    """This checkout's code; a plain colour terminal whose size comes from the pty."""
    drop = {"COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("LONGWRITE")}
    env["TERM"] = "xterm-256color"
    env["PYTHONPATH"] = str(ROOT)
    return env


def drain(fd: int, into: list[bytes]) -> threading.Thread:
    """Read `fd` until end of file (a pty answers EIO once the child is gone)."""

    def loop() -> None:
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                break
            if not data:
                break
            into.append(data)
        os.close(fd)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def start_cli(url: str, terminal: bool) -> tuple[subprocess.Popen, list[bytes], list[bytes], list]:
    """The CLI on a 100x40 pseudo-terminal (stdin, stdout, stderr), or on pipes."""
    cmd = [sys.executable, "-m", "longwrite", PROMPT, "--server", url]
    out: list[bytes] = []
    err: list[bytes] = []
    if terminal:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", HEIGHT, WIDTH, 0, 0))
        proc = subprocess.Popen(
            cmd, stdin=slave, stdout=slave, stderr=slave, env=cli_env(), start_new_session=True
        )
        os.close(slave)
        return proc, out, err, [drain(master, out)]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    readers = [drain(os.dup(proc.stdout.fileno()), out), drain(os.dup(proc.stderr.fileno()), err)]
    proc.stdout.close()
    proc.stderr.close()
    return proc, out, err, readers


def finish_cli(proc: subprocess.Popen, readers: list) -> tuple[float, float]:
    """(CPU seconds, wall seconds until exit) of the CLI; it must exit 0."""
    started = time.monotonic()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join(10)
    return usage.ru_utime + usage.ru_stime, time.monotonic() - started


def end_to_end(stream: str, sizes: list[int], doc: str) -> float:
    prompt = resolve_request(WriteOptions(prompt=PROMPT)).prompt
    generation = len(sizes) / PACE
    with serving(text=stream, prompt=prompt, pieces=sizes, delay=1 / PACE) as url:
        started = time.monotonic()
        tty_proc, tty_out, _, tty_readers = start_cli(url, terminal=True)
        pipe_proc, pipe_out, pipe_err, pipe_readers = start_cli(url, terminal=False)
        tty_cpu, _ = finish_cli(tty_proc, tty_readers)
        pipe_cpu, _ = finish_cli(pipe_proc, pipe_readers)
        wall = time.monotonic() - started
    drawn = sum(map(len, tty_out))
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(tty_out).decode("utf-8", "replace"))
    piped = b"".join(pipe_out).decode("utf-8")
    if tty_proc.returncode or pipe_proc.returncode or piped != doc:
        sys.exit(
            f"the CLI failed: exit {tty_proc.returncode} on the terminal, "
            f"{pipe_proc.returncode} into pipes ({b''.join(pipe_err).decode()[-300:]!r})"
        )
    if f"done · {count_words(doc):,} words" not in shown:
        sys.exit(f"no final status line on the terminal: {shown[-300:]!r}")
    ratio = (tty_cpu - pipe_cpu) / generation
    print(
        f"end to end, {len(sizes):,} tokens at {PACE:.0f} tok/s ({generation:.0f} s; the two "
        f"CLIs took {wall:.0f} s): CPU {tty_cpu:.2f} s on a {WIDTH}x{HEIGHT} pty, "
        f"{pipe_cpu:.2f} s into pipes; {drawn:,} bytes drawn on the pty"
    )
    return ratio


def main() -> None:
    doc = build_document()
    words = count_words(doc)
    stream = build_stream(doc)
    sizes = token_sizes(stream)
    deltas = deltas_of(stream, sizes)
    print(
        f"document: {words:,} words, {len(doc):,} chars, {doc.count(chr(10)):,} lines; "
        f"stream: {len(deltas):,} tokens of 1-7 chars"
    )
    in_process(deltas, words)
    ratio = end_to_end(stream, sizes, doc)
    print(f"render: ratio={ratio:.4f} goal<={GOAL}")


if __name__ == "__main__":
    main()
