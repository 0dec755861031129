"""What ships: the wheel carries the exact templates; the code stays ruff clean."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_prompt_templates_byte_for_byte(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("longwrite-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name in ("think_en.txt", "think_zh.txt", "direct_en.txt", "direct_zh.txt"):
            assert f"longwrite/prompts/{name}" in names
            assert z.read(f"longwrite/prompts/{name}") == (ROOT / "prompts" / name).read_bytes()
        assert "longwrite/doctor/matrix.toml" in names  # `longwrite doctor` reads it
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "longwrite = longwrite.cli.app:main" in z.read(entry_points).decode()


def test_ruff_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "longwrite", "tests", "bench"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
