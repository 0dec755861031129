"""Start-up cost of the command line: `longwrite --help` against a bare `import typer, rich`.

Every `longwrite` call pays its start-up before anything else happens, so the CLI must stay
as light as the libraries it is built on: nothing heavy (torch, transformers, vllm) at import.
Both commands run as fresh processes, alternately, several times; the best (least disturbed)
wall time of each is compared, on the same machine in the same minute. Last line:
`startup: ratio=R goal<=2.5` with R = best `longwrite --help` / best bare import.
"""

from __future__ import annotations

import subprocess
import sys
import time

RUNS = 7
HELP = [sys.executable, "-m", "longwrite", "--help"]
BARE = [sys.executable, "-c", "import typer, rich.console"]


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    wall(HELP), wall(BARE)  # warm the file cache
    helps, bares = [], []
    for _ in range(RUNS):
        helps.append(wall(HELP))
        bares.append(wall(BARE))
    best_help, best_bare = min(helps), min(bares)
    print(f"longwrite --help: best {best_help:.3f} s of {RUNS}")
    print(f"import typer, rich: best {best_bare:.3f} s of {RUNS}")
    print(f"startup: ratio={best_help / best_bare:.2f} goal<=2.5")


if __name__ == "__main__":
    main()
