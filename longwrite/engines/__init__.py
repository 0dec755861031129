"""Engines turn a raw prompt into a stream of text chunks (protocol in `base.py`).

Each backend lives in its own module and is imported only when chosen, so that
`longwrite --help` and `--dry-run` never load torch, transformers or vllm.

`--engine auto` picks, in order: an OpenAI-compatible server if one is configured
(`--server` or `LONGWRITE_SERVER`); in-process vLLM if it is installed and a GPU is visible;
else transformers, which runs anywhere (with a warning when the model will not fit).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from longwrite.engines.base import DEFAULT_MODEL, ENV_SERVER, MODEL_CONTEXT, Engine, EngineError

ENGINES = ("auto", "vllm", "openai", "transformers")


@dataclass(frozen=True)
class EngineOptions:
    """Everything needed to start a backend; each backend reads the fields it knows."""

    engine: str = "auto"
    model: str | None = None  # None: the server's model, or DEFAULT_MODEL for local engines
    server: str | None = None  # None: LONGWRITE_SERVER
    servers: tuple[str, ...] = ()  # more servers that share the work (--server given again)
    device: str = "auto"
    dtype: str = "auto"
    tp: int | None = None
    max_model_len: int = MODEL_CONTEXT
    gpu_memory_utilization: float = 0.9


def configured_server(server: str | None) -> str | None:
    return server or os.environ.get(ENV_SERVER) or None


def resolve_engine_name(name: str, *, server: str | None = None) -> str:
    """The backend `--engine NAME` stands for on this machine."""
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    if name != "auto":
        return name
    if configured_server(server):
        return "openai"
    from longwrite.engines.vllm import gpu_count, vllm_available

    if vllm_available() and gpu_count() > 0:
        return "vllm"
    return "transformers"


def load_engine(options: EngineOptions) -> Engine:
    """Start the backend `options.engine`. Raises EngineError with a one-line reason."""
    backend = resolve_engine_name(options.engine, server=options.server)
    if backend == "openai":
        from longwrite.engines.openai import from_env

        if options.servers:  # several servers share the streams
            from longwrite.engines.fanout import FanoutEngine

            urls = [options.server, *options.servers]
            return FanoutEngine([from_env(url, options.model) for url in urls])
        return from_env(options.server, options.model)
    model = options.model or DEFAULT_MODEL
    if backend == "vllm":
        from longwrite.engines.vllm import VLLMEngine

        return VLLMEngine(
            model,
            tp=options.tp,
            max_model_len=options.max_model_len,
            gpu_memory_utilization=options.gpu_memory_utilization,
            dtype=options.dtype,
        )
    from longwrite.engines.transformers import TransformersEngine

    return TransformersEngine(model, device=options.device, dtype=options.dtype)


_SIZE_IN_NAME = re.compile(r"(\d+(?:\.\d+)?)\s*[bB](?![a-zA-Z])")


def params_from_name(model: str) -> float | None:
    """Parameters suggested by a model id such as "LongWriter-Zero-32B" (32e9), or None."""
    match = _SIZE_IN_NAME.search(model.rsplit("/", 1)[-1])
    return float(match.group(1)) * 1e9 if match else None


def size_warning(model: str, memory_bytes: int, bytes_per_param: int) -> str | None:
    """A one-line warning when `model` will not fit in `memory_bytes`, else None."""
    params = params_from_name(model)
    if params is None:
        return None
    need = params * bytes_per_param
    if need <= memory_bytes:
        return None
    return (
        f"{model} needs about {need / 2**30:.0f} GiB for its weights and this machine has "
        f"{memory_bytes / 2**30:.0f} GiB: run it on a GPU box (pip install 'longwrite[vllm]') "
        "or point --server at one"
    )
