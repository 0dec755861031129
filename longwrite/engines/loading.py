"""Finding and loading Hugging Face models and tokenizers, and choosing device and dtype.

Shared by the transformers engine, the vLLM engine and `longwrite serve`. A path that looks
local must be an existing folder (one clear line otherwise, before minutes of loading); a hub
id already in the local cache is loaded with `local_files_only`, so an offline machine does not
wait on network retries.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from longwrite.engines.base import EngineError
from longwrite.errors import one_line

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_model_path(model: str) -> str:
    """A local-looking path must be an existing folder; anything else is a hub id."""
    expanded = os.path.expanduser(model)
    looks_local = model.startswith(("/", "./", "../", "~")) or os.path.exists(expanded)
    if not looks_local:
        return model
    if not os.path.isdir(expanded):
        raise EngineError(f"model not found: {model} (no such folder)")
    return expanded


def offline_kwargs(model: str, filename: str) -> dict[str, Any]:
    """`local_files_only=True` for a hub id already in the local cache: no network round trips."""
    if os.path.isdir(model):
        return {}
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, filename)
    except Exception:  # an id the hub library rejects: let from_pretrained explain
        return {}
    return {"local_files_only": True} if isinstance(cached, str) else {}


def load_error(what: str, model: str, exc: BaseException) -> EngineError:
    hint = ""
    if not os.path.isdir(os.path.expanduser(model)):
        hint = (
            " (not a local folder; the id is not in the local cache or no model hub is reachable)"
        )
    return EngineError(f"cannot load {what} {model!r}{hint}: {one_line(exc)}")


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """The tokenizer at `path` (a local folder or a cached hub id), or EngineError."""
    from transformers import AutoTokenizer

    resolved = resolve_model_path(path)
    try:
        return AutoTokenizer.from_pretrained(
            resolved, **offline_kwargs(resolved, "tokenizer_config.json")
        )
    except (OSError, ValueError) as exc:
        raise load_error("tokenizer", path, exc) from exc


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise EngineError(f"bad device {device!r}: use one of {', '.join(DEVICES)}") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise EngineError(f"device {device!r}: CUDA is not available here")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise EngineError(f"device {device!r}: only {count} CUDA device(s) here")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise EngineError(f"device {device!r}: MPS is not available here")
    elif parsed.type != "cpu":
        raise EngineError(f"bad device {device!r}: use one of {', '.join(DEVICES)}")
    return str(parsed)


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        import torch

        if device.startswith("cuda"):
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float16" if device.startswith("mps") else "float32"
    if dtype not in DTYPES:
        raise EngineError(f"bad dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    return dtype
