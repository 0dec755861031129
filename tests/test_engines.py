"""Engine selection (`--engine auto`) and the too-large-model warning."""

import pytest

import longwrite.engines.vllm as vllm_module
from longwrite.engines import params_from_name, resolve_engine_name, size_warning
from longwrite.engines.base import EngineError

GiB = 2**30


@pytest.fixture
def no_server(monkeypatch):
    monkeypatch.delenv("LONGWRITE_SERVER", raising=False)


def machine(monkeypatch, *, vllm: bool, gpus: int) -> None:
    monkeypatch.setattr(vllm_module, "vllm_available", lambda: vllm)
    monkeypatch.setattr(vllm_module, "gpu_count", lambda: gpus)


def test_auto_prefers_a_configured_server(monkeypatch, no_server):
    machine(monkeypatch, vllm=True, gpus=8)
    assert resolve_engine_name("auto", server="http://127.0.0.1:8000") == "openai"
    monkeypatch.setenv("LONGWRITE_SERVER", "http://127.0.0.1:8000")
    assert resolve_engine_name("auto") == "openai"


def test_auto_takes_vllm_only_with_a_gpu(monkeypatch, no_server):
    machine(monkeypatch, vllm=True, gpus=2)
    assert resolve_engine_name("auto") == "vllm"
    machine(monkeypatch, vllm=True, gpus=0)
    assert resolve_engine_name("auto") == "transformers"
    machine(monkeypatch, vllm=False, gpus=4)
    assert resolve_engine_name("auto") == "transformers"


def test_explicit_engines_and_unknown_names(no_server):
    for name in ("vllm", "openai", "transformers"):
        assert resolve_engine_name(name) == name
    with pytest.raises(EngineError, match="unknown engine"):
        resolve_engine_name("llamacpp")


@pytest.mark.parametrize(
    "model, params",
    [
        ("THU-KEG/LongWriter-Zero-32B", 32e9),
        ("Qwen/Qwen2.5-1.5B-Instruct", 1.5e9),
        ("Qwen/Qwen2.5-7b", 7e9),
        ("runs/tiny-model", None),
        ("gpt2", None),
        ("org/model-b2", None),
    ],
)
def test_params_from_name(model, params):
    assert params_from_name(model) == params


def test_size_warning():
    warning = size_warning("THU-KEG/LongWriter-Zero-32B", 24 * GiB, 4)
    assert warning is not None and "119 GiB" in warning and "24 GiB" in warning
    assert "\n" not in warning
    assert size_warning("Qwen/Qwen2.5-1.5B", 24 * GiB, 4) is None  # 5.6 GiB fits
    assert size_warning("runs/tiny-model", 1 * GiB, 4) is None  # size unknown: no warning
