"""The transformers backend: `model.generate` in a background thread, streamed as chunks.

Stop strings are both handed to `generate` (so it halts) and trimmed here (so no chunk ever
holds one, even when it arrives split over several pieces). Closing the stream early sets an
event that a stopping criterion polls, so generation ends within one token.

Batches: `Sampling.n > 1` runs n copies of the prompt in one `generate` (best-of), and
`stream_prompts` runs several different prompts in one left-padded `generate` (`batch`), each
row with its own `max_tokens` and `min_tokens`. transformers cannot stream text per row, so a
batch reports progress (tokens per step) while it runs and each row's text when it ends.
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
from longwrite.engines.stops import StopTrimmer

__all__ = ["StopTrimmer", "TransformersEngine", "load_tokenizer"]

JOIN_TIMEOUT_S = 30.0  # how long closing a stream waits for the generate thread

_DONE = object()  # queue sentinel: the generate thread has finished (or failed)


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


class TransformersEngine:
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

    def _stream_batch(
        self, input_ids: Any, attention_mask: Any, sampling: Sampling, max_new: int, stops: tuple
    ) -> Iterator[Chunk]:
        """`n` candidates of one prompt in one batch, for best-of: n copies of the prompt
        (rather than num_return_sequences, which greedy decoding refuses)."""
        n = sampling.n
        yield from self._stream_rows(
            input_ids.repeat(n, 1),
            attention_mask.repeat(n, 1),
            sampling,
            [max_new] * n,
            [min(sampling.min_tokens, max_new)] * n,
            stops,
        )

    def stream_prompts(self, prompts: list[str], samplings: list[Sampling]) -> Iterator[Chunk]:
        """Several different prompts in one left-padded batch; `Chunk.index` is the prompt's
        position in `prompts`. Each sampling must have `n == 1`.

        One `generate` call has one temperature, top_p, top_k, repetition penalty and stop
        list, so the rows must agree on those (ValueError otherwise); `max_tokens` and
        `min_tokens` are per row. The batch is seeded with the first seed given, so a row's
        text depends on its batch mates: seeds reproduce a whole batch, not a single row.
        Chunks come as in best-of: text-free progress chunks per step, then one final chunk
        per row with its text.
        """
        if self._model is None:
            raise EngineError("the transformers engine is closed")
        if not prompts or len(prompts) != len(samplings):
            raise ValueError("stream_prompts needs one sampling per prompt, and some prompts")
        first = samplings[0]
        shared = ("temperature", "top_p", "top_k", "repetition_penalty", "stop")
        for s in samplings:
            if s.n != 1:
                raise ValueError("stream_prompts takes one row per prompt (n == 1)")
            if any(getattr(s, f) != getattr(first, f) for f in shared):
                raise ValueError(f"the rows of one batch must share {', '.join(shared)}")
        self._join_abandoned()
        import torch

        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        limit = self._context_limit()
        row_max = []
        for ids, s in zip(encoded, samplings, strict=True):
            if limit is not None and len(ids) >= limit:
                raise EngineError(
                    f"the prompt is {len(ids)} tokens; the model's context is {limit}"
                )
            row_max.append(fit_max_tokens(s.max_tokens, len(ids), limit))
        row_min = [min(s.min_tokens, m) for s, m in zip(samplings, row_max, strict=True)]
        pad = self._generate_kwargs(first, 1).get("pad_token_id", 0)
        width = max(len(ids) for ids in encoded)
        # Left padding: every row's last prompt token sits in the last column, so all rows
        # generate from the same step; the mask keeps the padding out of attention.
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
        seeded = next((s for s in samplings if s.seed is not None), first)
        yield from self._stream_rows(
            input_ids.to(self._model.device),
            mask.to(self._model.device),
            seeded,
            row_max,
            row_min,
            tuple(s for s in first.stop if s),
        )

    def _join_abandoned(self) -> None:
        if self.busy:  # an earlier stream was abandoned without being closed
            self.cancel()
            self._thread.join(JOIN_TIMEOUT_S)
            if self.busy:
                raise EngineError("the previous generation is still running")

    def _stream_rows(
        self,
        input_ids: Any,
        attention_mask: Any,
        sampling: Sampling,
        row_max: list[int],
        row_min: list[int],
        stops: tuple,
    ) -> Iterator[Chunk]:
        """One `generate` over the rows of `input_ids`, each with its own token limits.

        transformers cannot stream text per row, so while the batch runs each unfinished row
        reports one token per step (text-free chunks: progress only); each row's text,
        trimmed at its first stop string, comes in its final chunk. A row ends at its own
        `max_tokens` through a per-row stopping criterion, and cannot end before its own
        `min_tokens` through a per-row logits processor that masks the end-of-sequence token.
        """
        import queue as queue_mod

        import torch
        from transformers import (
            LogitsProcessor,
            LogitsProcessorList,
            StoppingCriteria,
            StoppingCriteriaList,
            set_seed,
        )

        cancel = threading.Event()
        steps: queue_mod.Queue = queue_mod.Queue()
        kwargs = self._generate_kwargs(sampling, max(row_max))
        kwargs.pop("min_new_tokens", None)
        ended = self._eos_ids | {kwargs.get("pad_token_id")}
        width = input_ids.shape[1]
        device = input_ids.device
        limits = torch.tensor(row_max, device=device)
        minimums = torch.tensor(row_min, device=device)
        eos = torch.tensor(sorted(self._eos_ids), dtype=torch.long, device=device)

        # With a minimum, stop strings are checked here, per row and only once the row has its
        # minimum (generate's own stop_strings cannot wait for it).
        own_stops = stops if any(row_min) else ()
        tail = max((len(s) for s in own_stops), default=0) + 4  # tokens enough to hold a stop
        stopped = [False] * len(row_max)
        decode = self.tokenizer.decode

        def completes_stop(row: list[int]) -> bool:
            now = decode(row[-tail:], skip_special_tokens=True)
            before = decode(row[-tail:-1], skip_special_tokens=True)
            return any(s in now and s not in before for s in own_stops)

        class Progress(StoppingCriteria):
            def __call__(self, ids: Any, scores: Any, **kwargs: Any) -> Any:
                steps.put(ids[:, -1].tolist())
                if cancel.is_set():
                    return torch.ones((ids.shape[0],), dtype=torch.bool, device=ids.device)
                made = ids.shape[1] - width
                for i in range(len(stopped)) if own_stops else ():
                    if not stopped[i] and made >= row_min[i]:
                        stopped[i] = completes_stop(ids[i, width:].tolist())
                done = torch.tensor(stopped, dtype=torch.bool, device=ids.device)
                return (limits <= made) | done

        class MinTokens(LogitsProcessor):
            def __call__(self, ids: Any, scores: Any) -> Any:
                early = minimums > ids.shape[1] - width
                if eos.numel() and bool(early.any()):
                    scores[early.nonzero().squeeze(1)[:, None], eos] = -float("inf")
                return scores

        kwargs.update(
            input_ids=input_ids,
            attention_mask=attention_mask,
            stopping_criteria=StoppingCriteriaList([Progress()]),
        )
        if any(row_min):
            kwargs["logits_processor"] = LogitsProcessorList([MinTokens()])
        if stops and not own_stops:
            kwargs.update(stop_strings=list(stops), tokenizer=self.tokenizer)
        if sampling.seed is not None:
            set_seed(sampling.seed)
        output: list[Any] = []
        failure: list[BaseException] = []
        model = self._model

        def run() -> None:
            try:
                with torch.inference_mode():
                    output.append(model.generate(**kwargs))
            except BaseException as exc:  # handed to the consumer, which re-raises it
                failure.append(exc)
            finally:
                steps.put(_DONE)

        thread = threading.Thread(target=run, name="longwrite-generate-batch", daemon=True)
        self._thread, self._cancel = thread, cancel
        rows = len(row_max)
        reported = [0] * rows
        done = [False] * rows
        try:
            thread.start()
            while (last := steps.get()) is not _DONE:
                for i, token in enumerate(last):
                    if not done[i]:
                        reported[i] += 1
                        done[i] = token in ended or reported[i] >= row_max[i]
                        yield Chunk("", tokens=1, index=i)
            thread.join()
            if failure:
                raise failure[0]
            new = output[0][:, width:].tolist()
            for i, row in enumerate(new):
                yield self._final_chunk(
                    i, row[: row_max[i]], stops, row_max[i], row_min[i], reported[i],
                    cancel.is_set(),
                )  # fmt: skip
        finally:
            cancel.set()
            if thread.is_alive():
                thread.join(JOIN_TIMEOUT_S)

    def _final_chunk(
        self,
        index: int,
        row: list[int],
        stops: tuple,
        max_new: int,
        min_new: int,
        reported: int,
        cancelled: bool,
    ) -> Chunk:
        """One candidate's whole text, trimmed at the first stop string completed after its
        first `min_new` tokens, with its finish reason and the tokens not yet reported."""
        end = next((k for k, t in enumerate(row) if t in self._eos_ids), None)
        ids = row if end is None else row[: end + 1]
        whole = self.tokenizer.decode(ids, skip_special_tokens=True)
        head = self.tokenizer.decode(ids[:min_new], skip_special_tokens=True) if min_new else ""
        if not whole.startswith(head):
            head = ""  # a character split across the boundary: judge the whole text
        trimmer = StopTrimmer(stops, armed=not head)
        text = trimmer.feed(head)
        trimmer.arm()
        text += trimmer.feed(whole[len(head) :])
        if trimmer.stopped or end is not None:
            finish = FINISH_STOP
        elif cancelled:
            finish = FINISH_CANCELLED
        else:
            text += trimmer.flush()
            finish = FINISH_LENGTH if len(ids) >= max_new else FINISH_STOP
        return Chunk(text, tokens=max(len(ids) - reported, 0), finish_reason=finish, index=index)

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
