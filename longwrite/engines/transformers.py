"""The transformers backend: `model.generate` in a background thread, streamed as chunks.

Stop strings are both handed to `generate` (so it halts) and trimmed here (so no chunk ever
holds one, even when it arrives split over several pieces). Closing the stream early sets an
event that a stopping criterion polls, so generation ends within one token.

Batches (`Sampling.n > 1`, `stream_prompts`) are in `engines.rows`, mixed in here.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

from longwrite.engines.base import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    Chunk,
    EngineError,
    EngineInfo,
    Sampling,
    fit_max_tokens,
)
from longwrite.engines.loading import (
    load_error,
    load_tokenizer,
    offline_kwargs,
    resolve_device,
    resolve_dtype,
    resolve_model_path,
)
from longwrite.engines.rows import DONE as _DONE
from longwrite.engines.rows import JOIN_TIMEOUT_S, RowBatches
from longwrite.engines.stops import StopTrimmer

__all__ = ["StopTrimmer", "TransformersEngine", "load_tokenizer"]


@cache
def _helpers() -> tuple[type, type]:
    """The streamer and stopping-criterion classes (built lazily: they subclass transformers)."""
    import torch
    from transformers import StoppingCriteria, TextIteratorStreamer

    class CountingStreamer(TextIteratorStreamer):
        """Queues `(text, tokens)` pairs, where `tokens` is how many tokens arrived with it."""

        def __init__(self, tokenizer: Any) -> None:
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
            self.generated = 0
            self.last_token: int | None = None
            self._pending = 0

        def put(self, value: Any) -> None:
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                ids = value.reshape(-1).tolist()
                self.generated += len(ids)
                self._pending += len(ids)
                if ids:
                    self.last_token = ids[-1]
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            tokens, self._pending = self._pending, 0
            self.text_queue.put((text, tokens))  # the thread itself queues _DONE at the end

    class EventStop(StoppingCriteria):
        """Stops generation as soon as `event` is set."""

        def __init__(self, event: threading.Event) -> None:
            self.event = event

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full(
                (input_ids.shape[0],),
                self.event.is_set(),
                dtype=torch.bool,
                device=input_ids.device,
            )

    return CountingStreamer, EventStop


class TransformersEngine(RowBatches):
    """A local model run with `transformers` (CPU, CUDA or MPS)."""

    def __init__(self, model: str, *, device: str = "auto", dtype: str = "auto") -> None:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM

        path = resolve_model_path(model)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.tokenizer = load_tokenizer(path)
        dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        try:
            self._model = AutoModelForCausalLM.from_pretrained(
                path,
                # plain "cuda" spreads the layers over every visible GPU (a 32B model needs 2+)
                device_map="auto" if self.device == "cuda" else self.device,
                **{dtype_kw: getattr(torch, self.dtype)},
                **offline_kwargs(path, "config.json"),
            )
        except torch.OutOfMemoryError as exc:
            raise EngineError(
                f"out of memory loading {model!r} on {self.device} as {self.dtype}"
            ) from exc
        except (OSError, ValueError) as exc:
            raise load_error("model", model, exc) from exc
        self._model.eval()
        eos = self._model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self._thread: threading.Thread | None = None
        self._cancel: threading.Event | None = None
        self.info = EngineInfo(
            name="transformers",
            model=model,
            details={"device": self.device, "dtype": self.dtype},
            context=self._context_limit(),
        )

    @property
    def busy(self) -> bool:
        """Whether a generate thread is still running."""
        return self._thread is not None and self._thread.is_alive()

    def cancel(self) -> None:
        """Stop the running stream (from any thread); it ends with finish_reason "cancelled"."""
        if self._cancel is not None:
            self._cancel.set()

    def count_tokens(self, text: str) -> int | None:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _context_limit(self) -> int | None:
        limit = getattr(self._model.config, "max_position_embeddings", None)
        return limit if isinstance(limit, int) and limit > 0 else None

    def _generate_kwargs(self, sampling: Sampling, max_new: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": max_new}
        if sampling.temperature == 0:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            # top_k=0: only temperature and top_p apply, not transformers' default top_k of 50
            kwargs.update(
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k,
            )
        if sampling.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = sampling.repetition_penalty
        if sampling.min_tokens:
            kwargs["min_new_tokens"] = min(sampling.min_tokens, max_new)
        pad = self._model.generation_config.pad_token_id
        if pad is None:
            pad = self.tokenizer.pad_token_id
        if pad is None and self._eos_ids:
            pad = min(self._eos_ids)
        if pad is not None:
            kwargs["pad_token_id"] = pad
        return kwargs

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        import torch
        from transformers import StoppingCriteriaList, set_seed

        if self._model is None:
            raise EngineError("the transformers engine is closed")
        self._join_abandoned()
        streamer_cls, stop_cls = _helpers()

        enc = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        input_ids = enc["input_ids"].to(self._model.device)
        attention_mask = enc["attention_mask"].to(self._model.device)
        n_prompt = input_ids.shape[1]
        max_new = sampling.max_tokens
        limit = self._context_limit()
        if limit is not None:
            if n_prompt >= limit:
                raise EngineError(
                    f"the prompt is {n_prompt} tokens; the model's context is {limit}"
                )
            max_new = fit_max_tokens(max_new, n_prompt, limit)

        stops = tuple(s for s in sampling.stop if s)
        if sampling.n > 1:
            yield from self._stream_batch(input_ids, attention_mask, sampling, max_new, stops)
            return
        cancel = threading.Event()
        streamer = streamer_cls(self.tokenizer)
        kwargs = self._generate_kwargs(sampling, max_new)
        kwargs.update(
            input_ids=input_ids,
            attention_mask=attention_mask,
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([stop_cls(cancel)]),
        )
        min_new = kwargs.get("min_new_tokens", 0)  # blocks EOS; stop strings wait for it too
        if stops and not min_new:
            kwargs.update(stop_strings=list(stops), tokenizer=self.tokenizer)
        if sampling.seed is not None:
            set_seed(sampling.seed)

        failure: list[BaseException] = []
        model = self._model

        def run() -> None:
            try:
                with torch.inference_mode():
                    model.generate(**kwargs)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                failure.append(exc)
            finally:
                streamer.text_queue.put(_DONE)

        thread = threading.Thread(target=run, name="longwrite-generate", daemon=True)
        self._thread, self._cancel = thread, cancel
        queue = streamer.text_queue
        trimmer = StopTrimmer(stops, armed=not min_new)
        before_stop = ""  # the text before a stop string, once one has completed
        tokens = 0  # tokens that arrived but are not reported yet
        generated = 0
        try:
            thread.start()
            while (item := queue.get()) is not _DONE:
                piece, n = item
                tokens += n
                generated += n
                if generated >= min_new:
                    trimmer.arm()  # our own check stops generation (cancel) within a token
                if trimmer.stopped:
                    continue  # draining the token or so generated after the stop
                text = trimmer.feed(piece)
                if trimmer.stopped:
                    before_stop = text
                    cancel.set()
                elif text:
                    yield Chunk(text, tokens=tokens)
                    tokens = 0
            thread.join()
            if failure:
                raise failure[0]
            if trimmer.stopped:
                yield Chunk(before_stop, tokens=tokens, finish_reason=FINISH_STOP)
                return
            if streamer.last_token in self._eos_ids:
                finish = FINISH_STOP
            elif cancel.is_set():
                finish = FINISH_CANCELLED
            elif streamer.generated >= max_new:
                finish = FINISH_LENGTH
            else:
                finish = FINISH_STOP  # generate's own stop-string check (e.g. a special token)
            yield Chunk(trimmer.flush(), tokens=tokens, finish_reason=finish)
        finally:
            cancel.set()
            if thread.is_alive():
                thread.join(JOIN_TIMEOUT_S)

    def _join_abandoned(self) -> None:
        if self.busy:  # an earlier stream was abandoned without being closed
            self.cancel()
            self._thread.join(JOIN_TIMEOUT_S)
            if self.busy:
                raise EngineError("the previous generation is still running")

    def close(self) -> None:
        """Free the model (and GPU memory); the engine cannot stream afterwards."""
        if self._model is None:
            return
        self.cancel()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
        self._model = None
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
