"""Batched generation for the transformers engine: several rows in one `generate`.

`Sampling.n > 1` runs n copies of one prompt (best-of), and `stream_prompts` runs several
different prompts in one left-padded batch (`longwrite batch`), each row with its own
`max_tokens` and `min_tokens`. transformers cannot stream text per row, so a batch reports
progress (one text-free chunk per row and step) while it runs, and each row's text, trimmed at
its first stop string, in its final chunk. Kept apart from the single stream, which is what
the main command uses; `TransformersEngine` mixes this in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from longwrite.engines.base import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    Chunk,
    EngineError,
    Sampling,
    fit_max_tokens,
)
from longwrite.engines.stops import StopTrimmer

JOIN_TIMEOUT_S = 30.0  # how long closing a stream waits for the generate thread
DONE = object()  # queue sentinel: the generate thread has finished (or failed)


class RowBatches:
    """The batched paths of `TransformersEngine` (which provides the model, tokenizer, end
    tokens, `_generate_kwargs`, `_context_limit` and `_join_abandoned`)."""

    _model: Any
    tokenizer: Any
    _eos_ids: set[int]
    _thread: threading.Thread | None
    _cancel: threading.Event | None

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
                steps.put(DONE)

        thread = threading.Thread(target=run, name="longwrite-generate-batch", daemon=True)
        self._thread, self._cancel = thread, cancel
        rows = len(row_max)
        reported = [0] * rows
        done = [False] * rows
        try:
            thread.start()
            while (last := steps.get()) is not DONE:
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
