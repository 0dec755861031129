"""Loading a local model: a size check before, a spinner during (32B weights take minutes).

`longwrite PROMPT` and `batch` load local engines the same way: warn in one line when the
model cannot fit this machine's memory, silence the hub's progress bars (our spinner says a
model is loading; a library's bar on a piped stderr is noise), and show a spinner on a
terminal while the weights load.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from longwrite.engines import EngineOptions
from longwrite.engines.base import Engine
from longwrite.errors import say


def load_local_engine(options: EngineOptions, backend: str) -> Engine:
    """`load_engine(options)` with the size warning (transformers) and the spinner."""
    from longwrite.engines import load_engine  # looked up now: tests stand a script in

    if backend == "transformers":
        warn_if_too_large(options)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with Spinner(options.model or backend):
        return load_engine(options)


def warn_if_too_large(engine: EngineOptions) -> None:
    """Warn before loading when the model cannot fit this machine's memory."""
    from longwrite.engines import size_warning
    from longwrite.engines.base import DEFAULT_MODEL

    model = engine.model or DEFAULT_MODEL
    try:
        import torch

        if torch.cuda.is_available():
            memory = sum(
                torch.cuda.get_device_properties(i).total_memory
                for i in range(torch.cuda.device_count())
            )
            bytes_per_param = 2
        else:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            bytes_per_param = 2 if engine.dtype in ("bfloat16", "float16") else 4
    except (ImportError, ValueError, OSError):
        return
    warning = size_warning(model, memory, bytes_per_param)
    if warning:
        say(f"longwrite: warning: {warning}")


class Spinner:
    """A spinner on stderr while a model loads (loading 32B weights takes minutes)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._status: Any = None

    def __enter__(self) -> None:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.text import Text

            # Text, not markup: a model path may hold brackets
            self._status = Console(stderr=True).status(Text(f"loading {self.what}…"))
            self._status.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)
