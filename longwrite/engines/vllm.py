"""The in-process vLLM backend: LongWriter-Zero-32B spread over the GPUs with tensor parallelism.

vLLM's engine (`AsyncLLM`) is asynchronous while our `Engine` protocol is a plain iterator, so
the engine lives on one background thread running its own asyncio loop; each `stream` submits a
request there and receives its deltas (`RequestOutputKind.DELTA`) through a queue. Closing the
stream aborts the request in vLLM, so Ctrl-C frees the GPUs within a step.

vLLM trims stop strings itself (`SamplingParams.stop`, without `include_stop_str_in_output`), so
no chunk holds one. The settings are built by two small pure functions (`build_engine_args`,
`build_sampling_params`) that the contract test checks against the pinned vLLM on a CPU.

Nothing here imports vllm or torch at module level: `vllm_available` and `gpu_count` serve
`--engine auto`, and the CLI must stay light.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import importlib.util
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from longwrite.engines.base import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    MODEL_CONTEXT,
    Chunk,
    EngineError,
    EngineInfo,
    Sampling,
    fit_max_tokens,
)
from longwrite.engines.loading import DTYPES
from longwrite.errors import one_line

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs

INSTALL_HINT = "the vllm engine needs the vllm extra: pip install 'longwrite[vllm]'"
# vLLM's finish reasons (vllm.v1.engine.FINISH_REASON_STRINGS) in our words; "error" raises.
FINISH_REASONS = {
    "stop": FINISH_STOP,
    "length": FINISH_LENGTH,
    "abort": FINISH_CANCELLED,
    "repetition": FINISH_STOP,
}
CALL_TIMEOUT_S = 30.0  # abort, shutdown and the end of a closed stream each wait this long

_DONE = object()  # queue sentinel: the request's generator has ended (or failed)


def vllm_available() -> bool:
    """Whether vllm is installed (without importing it)."""
    try:
        return importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):
        return False


def gpu_count() -> int:
    """CUDA GPUs visible to torch; 0 without torch or CUDA."""
    try:
        import torch
    except ImportError:
        return 0
    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except RuntimeError:  # a broken driver reads as no GPU
        return 0


def default_tp(gpus: int) -> int:
    """The tensor-parallel size for `gpus` GPUs: the largest power of two that fits.

    Attention heads split evenly only over a power of two (LongWriter-Zero-32B has 40 query and
    8 key/value heads), so on 3, 5, 6 or 7 GPUs some stay idle rather than vLLM refusing.
    """
    return 1 << (max(gpus, 1).bit_length() - 1)


def build_engine_args(
    model: str,
    tp: int,
    max_model_len: int,
    gpu_memory_utilization: float,
    dtype: str,
    seed: int | None,
) -> AsyncEngineArgs:
    """vLLM's engine settings for LongWriter-Zero.

    Prefix caching makes a continuation (the prompt plus the text so far) cheap. The model's
    generation_config.json is not read (`generation_config="vllm"`): `Sampling` is the only
    source of sampling settings, as with `longwrite serve`. Periodic throughput logs are off:
    they would cut through the status line.
    """
    from vllm.engine.arg_utils import AsyncEngineArgs

    if tp < 1:
        raise EngineError(f"tensor parallel size must be at least 1, not {tp}")
    if max_model_len < 1:
        raise EngineError(f"max_model_len must be positive, not {max_model_len}")
    if not 0 < gpu_memory_utilization <= 1:
        raise EngineError(f"gpu_memory_utilization must be in (0, 1], not {gpu_memory_utilization}")
    if dtype not in DTYPES:
        raise EngineError(f"bad dtype {dtype!r} for vllm: use one of {', '.join(DTYPES)}")
    kwargs: dict[str, Any] = {
        "model": model,
        "tensor_parallel_size": tp,
        "max_model_len": max_model_len,
        "gpu_memory_utilization": gpu_memory_utilization,
        "dtype": dtype,
        "enable_prefix_caching": True,
        "generation_config": "vllm",
        "disable_log_stats": True,
    }
    if seed is not None:
        kwargs["seed"] = seed
    return AsyncEngineArgs(**kwargs)


def build_sampling_params(sampling: Sampling) -> SamplingParams:
    """vLLM's per-request settings for `sampling`, streamed as deltas.

    `top_k == 0` and `repetition_penalty == 1.0` mean "off" in vLLM as in `Sampling`. A setting
    vLLM refuses (greedy decoding with n > 1) becomes an EngineError.
    """
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    try:
        return SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            min_tokens=sampling.min_tokens,
            max_tokens=sampling.max_tokens,
            repetition_penalty=sampling.repetition_penalty,
            stop=[s for s in sampling.stop if s],
            seed=sampling.seed,
            skip_special_tokens=True,
            output_kind=RequestOutputKind.DELTA,
        )
    except Exception as exc:  # vLLM's validation errors do not share one base class
        raise EngineError(f"vllm refuses these sampling settings: {one_line(exc)}") from exc


class DeltaChunks:
    """Turns vLLM's `RequestOutput` deltas into chunks, one candidate at a time.

    A delta can carry tokens but no text yet (vLLM holds back what may start a stop string);
    its tokens are reported with the candidate's next chunk that has text or a finish reason.
    """

    def __init__(self) -> None:
        self.pending: dict[int, int] = {}  # candidate -> tokens not reported yet
        self.finished: set[int] = set()

    def feed(self, request_output: Any) -> list[Chunk]:
        chunks = []
        for out in request_output.outputs:
            index = out.index
            self.pending[index] = self.pending.get(index, 0) + len(out.token_ids)
            reason = out.finish_reason
            if reason == "error":
                raise EngineError("vllm failed the request (an internal error); try again")
            if not out.text and reason is None:
                continue
            finish = None if reason is None else FINISH_REASONS.get(reason, reason)
            if finish is not None:
                self.finished.add(index)
            chunks.append(Chunk(out.text, self.pending.pop(index), finish, index))
        return chunks


class _LoopThread:
    """An asyncio loop on a daemon thread; `call` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="longwrite-vllm", daemon=True
        )
        self.thread.start()

    def submit(self, coro: Any) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Any, timeout: float | None = None) -> Any:
        return self.submit(coro).result(timeout)

    def stop(self, timeout: float = CALL_TIMEOUT_S) -> None:
        """Stop the loop; a thread still busy after `timeout` is left to die with the process."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        if not self.thread.is_alive():
            self.loop.close()


def _engine_input(llm: Any, token_ids: list[int]) -> Any:
    """The prompt as vLLM wants it: rendered the way vLLM's own `LLM` does (vLLM 0.33).

    Other vLLM versions, and engines without a renderer, take the plain tokens prompt, which
    vLLM 0.33 still serves (with a deprecation warning).
    """
    prompt = {"prompt_token_ids": token_ids}
    try:
        from vllm.renderers.inputs.preprocess import parse_model_prompt

        renderer, model_config = llm.renderer, llm.model_config
    except (ImportError, AttributeError):
        return prompt
    (rendered,) = renderer.render_cmpl([parse_model_prompt(model_config, prompt)])
    return rendered


def checked_engine_args(
    model: str,
    tp: int | None,
    max_model_len: int,
    gpu_memory_utilization: float,
    dtype: str,
    seed: int | None,
) -> AsyncEngineArgs:
    """Check vllm and the GPUs (cheaply, before anything heavy), then build the engine args.

    `tp=None` takes `default_tp` of the visible GPUs. Raises EngineError with a one-line reason.
    """
    if not vllm_available():
        raise EngineError(INSTALL_HINT)
    gpus = gpu_count()
    if gpus == 0:
        raise EngineError(
            "the vllm engine needs a CUDA GPU and torch sees none here; "
            "use --engine transformers, or --server with a vLLM server elsewhere"
        )
    if tp is None:
        tp = default_tp(gpus)
    elif tp > gpus:
        raise EngineError(f"tensor parallel size {tp} needs {tp} GPUs; {gpus} visible here")
    from longwrite.engines.loading import resolve_model_path

    path = resolve_model_path(model)
    # vLLM logs to stdout by default, where the document goes, and its INFO lines would cut
    # through the spinner and the status line. It starts its workers from our loop thread
    # while other threads run (the spinner): forking then can deadlock, spawning cannot.
    # All three stay overridable from the environment.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    try:
        return build_engine_args(path, tp, max_model_len, gpu_memory_utilization, dtype, seed)
    except ImportError as exc:  # installed but broken (a missing dependency)
        raise EngineError(f"cannot import vllm ({one_line(exc)}); {INSTALL_HINT}") from exc


def _async_llm_factory(args: AsyncEngineArgs) -> Callable[[], Any]:
    try:
        from vllm.v1.engine.async_llm import AsyncLLM
    except ImportError as exc:
        raise EngineError(f"cannot import vllm ({one_line(exc)}); {INSTALL_HINT}") from exc
    return lambda: AsyncLLM.from_engine_args(args)


class VLLMEngine:
    """LongWriter-Zero (or any causal LM vLLM serves) in this process, on every visible GPU."""

    def __init__(
        self,
        model: str,
        *,
        tp: int | None = None,
        max_model_len: int = MODEL_CONTEXT,
        gpu_memory_utilization: float = 0.9,
        dtype: str = "auto",
        seed: int | None = None,
        engine_factory: Callable[[], Any] | None = None,
    ) -> None:
        """Start vLLM on `tp` GPUs (default: as many as the visible ones allow).

        `engine_factory` replaces `AsyncLLM.from_engine_args(...)` (it is called on the engine's
        loop thread); it exists for tests and for callers that build their own engine.
        """
        self.max_model_len = max_model_len
        if engine_factory is None:
            args = checked_engine_args(
                model, tp, max_model_len, gpu_memory_utilization, dtype, seed
            )
            tp = args.tensor_parallel_size
            engine_factory = _async_llm_factory(args)
        self.tp = tp or 1
        self._active: dict[str, bool] = {}  # request id -> cancelled
        self._lock = threading.Lock()
        self._loop: _LoopThread | None = _LoopThread()
        self._llm: Any = None

        async def build() -> Any:
            return engine_factory()

        try:
            self._llm = self._loop.call(build())
            self._tokenizer = self._llm.get_tokenizer()
        except BaseException as exc:
            # After Ctrl-C the thread may still be loading weights: do not wait for it.
            self._stop_loop(timeout=1.0)
            if isinstance(exc, EngineError | KeyboardInterrupt | SystemExit):
                raise
            raise EngineError(f"vllm could not start {model!r}: {one_line(exc)}") from exc
        self.info = EngineInfo(
            name="vllm",
            model=model,
            details={"tp": str(self.tp), "dtype": dtype},
            context=max_model_len,
        )

    def count_tokens(self, text: str) -> int | None:
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def cancel(self) -> None:
        """Stop every running stream (from any thread); each ends with finish "cancelled"."""
        with self._lock:
            ids = list(self._active)
            for request_id in ids:
                self._active[request_id] = True
        for request_id in ids:
            self._abort(request_id)

    def _abort(self, request_id: str) -> None:
        if self._loop is None or self._llm is None:
            return
        # Failing means the request already ended, or the engine died: nothing left to stop.
        with contextlib.suppress(Exception):
            self._loop.call(self._llm.abort(request_id), CALL_TIMEOUT_S)

    def _fit_to_context(self, sampling: Sampling, prompt_tokens: int) -> Sampling:
        # A safety net: `write_document` already asks for no more than fits (the same rule).
        room = fit_max_tokens(sampling.max_tokens, prompt_tokens, self.max_model_len)
        if room <= 0:
            raise EngineError(
                f"the prompt is {prompt_tokens} tokens; the context is {self.max_model_len} "
                "(raise --max-model-len if the model allows it)"
            )
        if sampling.max_tokens <= room:
            return sampling
        return dataclasses.replace(
            sampling, max_tokens=room, min_tokens=min(sampling.min_tokens, room)
        )

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        if self._llm is None or self._loop is None:
            raise EngineError("the vllm engine is closed")
        token_ids = self._tokenizer.encode(prompt, add_special_tokens=False)
        params = build_sampling_params(self._fit_to_context(sampling, len(token_ids)))
        return self._stream(token_ids, params, sampling.n)

    def _stream(self, token_ids: list[int], params: Any, n: int) -> Iterator[Chunk]:
        llm, loop = self._llm, self._loop
        request_id = f"longwrite-{uuid.uuid4().hex}"
        deltas: queue.Queue = queue.Queue()

        async def pump() -> None:
            try:
                engine_input = _engine_input(llm, token_ids)
                async for output in llm.generate(engine_input, params, request_id):
                    deltas.put(output)
            except BaseException as exc:  # handed to the consumer, which raises it
                deltas.put(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finally:
                deltas.put(_DONE)

        with self._lock:
            self._active[request_id] = False
        chunks = DeltaChunks()
        finished = False
        future = loop.submit(pump())
        try:
            while (item := deltas.get()) is not _DONE:
                if isinstance(item, BaseException):
                    if isinstance(item, EngineError):
                        raise item
                    raise EngineError(f"vllm failed: {one_line(item)}") from item
                yield from chunks.feed(item)
            finished = True
            missing = [i for i in range(n) if i not in chunks.finished]
            if missing and not self._active.get(request_id):
                raise EngineError("vllm ended the request without a finish reason")
            for index in missing:  # cancelled before vLLM said so for this candidate
                yield Chunk("", chunks.pending.pop(index, 0), FINISH_CANCELLED, index)
        finally:
            if not finished:
                self._abort(request_id)
            try:
                future.result(CALL_TIMEOUT_S)
            except BaseException:  # the consumer has its answer; the pump just has to end
                future.cancel()
            with self._lock:
                self._active.pop(request_id, None)

    def _stop_loop(self, timeout: float = CALL_TIMEOUT_S) -> None:
        if self._loop is not None:
            self._loop.stop(timeout)
            self._loop = None

    def close(self) -> None:
        """Shut vLLM down (its worker processes and GPU memory); no stream works afterwards."""
        if self._llm is None:
            self._stop_loop()
            return
        self.cancel()
        llm, self._llm = self._llm, None

        async def shutdown() -> None:
            llm.shutdown()

        try:
            if self._loop is not None:
                self._loop.call(shutdown(), CALL_TIMEOUT_S)
        except TimeoutError:  # vLLM's own exit handlers reap what is left
            pass
        finally:
            self._stop_loop()
