"""The PDF engine: WeasyPrint, found and tried before anything is written.

pandoc makes PDF through an external engine. WeasyPrint typesets pandoc's HTML with CSS, so
the PDF looks like the HTML export, and it installs from PyPI (the `export` extra); it needs
the Pango library of the system (on Debian: `libpango-1.0-0 libpangoft2-1.0-0`, present on
most desktops). A LaTeX engine would need a TeX distribution of a gigabyte or more.

The engine is looked for beside the running interpreter first (a venv's `bin/` is often not
on PATH when `.venv/bin/longwrite` is run), then on PATH, and run once (`--version` loads
Pango) so that a broken install is one clear line before any work. A Chinese document also
needs a font with Chinese glyphs, or the PDF shows empty boxes: fontconfig is asked first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from longwrite.errors import one_line
from longwrite.export.formats import ExportError

ENGINE = "weasyprint"
CHECK_TIMEOUT_S = 60.0
INSTEAD = "or export .html instead"
INSTALL = "pip install 'longwrite[export]'"


def _candidates() -> list[Path]:
    """Where the engine may be: the interpreter's scripts folders, then PATH."""
    folders = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    found = [Path(f) / ENGINE for f in dict.fromkeys(folders) if f]
    on_path = shutil.which(ENGINE)
    if on_path:
        found.append(Path(on_path))
    return found


def find_engine() -> Path:
    """The WeasyPrint program, run once to prove it works; an ExportError says what to do."""
    program = next((p for p in _candidates() if p.is_file() and os.access(p, os.X_OK)), None)
    if program is None:
        raise ExportError(
            f"PDF export needs WeasyPrint, the engine pandoc drives, and none was found: "
            f"{INSTALL} (it also needs the system's Pango library), {INSTEAD}"
        )
    try:
        done = subprocess.run(
            [str(program), "--version"], capture_output=True, text=True, timeout=CHECK_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ExportError(
            f"the PDF engine {program} does not run ({one_line(e)}); {INSTEAD}"
        ) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = one_line(lines[-1]) if lines else f"exit {done.returncode}"
        raise ExportError(
            f"the PDF engine {program} does not run ({why}); it needs the Pango library (on "
            f"Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0), {INSTEAD}"
        )
    return program


def check_chinese_font() -> None:
    """Refuse a Chinese PDF where fontconfig knows no font with Chinese glyphs (where
    `fc-list` is missing the engine's own fallback is trusted)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return
    try:
        done = subprocess.run(
            [fc_list, ":lang=zh", "family"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return
    if done.returncode == 0 and not done.stdout.strip():
        raise ExportError(
            "no font with Chinese characters is installed, so the PDF would show empty boxes: "
            f"install one (on Debian: apt-get install fonts-noto-cjk), {INSTEAD}"
        )
