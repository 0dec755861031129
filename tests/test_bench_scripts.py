"""Every benchmark script still imports: a rename elsewhere must not leave one broken until
someone runs `make bench` (bench/runlog.py once imported a helper bench/render.py dropped)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py"))


def test_the_bench_folder_has_its_scripts():
    assert {"render", "batch", "batch_client", "runlog", "guard", "sections"} <= {
        p.stem for p in SCRIPTS
    }


def test_make_bench_runs_every_benchmark():
    makefile = (BENCH.parent / "Makefile").read_text()
    listed = set(makefile.split("for b in ", 1)[1].split(";", 1)[0].split())
    helpers = {"scripted_server"}  # a helper of the benchmarks, not one of them
    assert listed == {p.stem for p in SCRIPTS} - helpers


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_a_bench_script_imports(script: Path, monkeypatch):
    # As `python bench/NAME.py` runs it: its own folder first (the scripts add others).
    monkeypatch.setattr(sys, "path", [str(BENCH), *sys.path])
    spec = importlib.util.spec_from_file_location(f"bench_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # top level only: main() runs under __main__
    assert callable(getattr(module, "main", None)) or script.stem == "scripted_server"
