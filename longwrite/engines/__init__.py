"""Engines turn a raw prompt into a stream of text chunks (protocol in `base.py`).

Each backend lives in its own module and is imported only when chosen, so that
`longwrite --help` and `--dry-run` never load torch, transformers or vllm.
"""

from __future__ import annotations

from longwrite.engines.base import Engine, EngineError

ENGINES = ("auto", "vllm", "openai", "transformers")


def resolve_engine_name(name: str) -> str:
    """The backend `--engine NAME` stands for on this machine."""
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    if name == "auto":
        # The server and vLLM engines come with the serving work; until then `auto` means
        # the one backend that runs everywhere.
        return "transformers"
    return name


def load_engine(name: str, model: str, *, device: str = "auto", dtype: str = "auto") -> Engine:
    """Load the backend `name` for `model`. Raises EngineError with a one-line reason."""
    backend = resolve_engine_name(name)
    if backend == "transformers":
        from longwrite.engines.transformers import TransformersEngine

        return TransformersEngine(model, device=device, dtype=dtype)
    raise EngineError(
        f"the {backend} engine is not available in this version yet; use --engine transformers"
    )
