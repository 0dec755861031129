"""How many tokens to allow: a thinking budget plus the answer's length, within the context.

LongWriter-Zero thinks for 2-3k tokens, then writes. For a target of N words we allow
`think_tokens + ceil(hi * tokens_per_word * HEADROOM)` new tokens, where `hi` is the top of the
target's range, and never more than the context leaves after the prompt. Without a target the
model card's 15,500 applies (capped the same way).

Tokens per word (words as LongBench-Write counts them) depend on the tokenizer and the
language. In order of preference we measure it:
1. with the model's own tokenizer, on a sample of our own prose in the request's language;
2. with tiktoken's `cl100k_base`, only where tiktoken's cache folder exists (tiktoken would
   otherwise download the encoding, and the machine may be offline);
3. from `TOKENS_PER_WORD`, a table of estimates for Qwen2.5-family tokenizers
   (LongWriter-Zero's), not measured here since no model hub is reachable: about 1.4 tokens
   per English word and 0.85 per Chinese character once Markdown, punctuation and digits
   (which count as no words) are included. Measure with the real tokenizer when you can.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

# The paper: thinking typically runs 2-3k tokens. One setting for both the budget's thinking
# allowance and the thinking cap (`--think-budget`): at the top of the typical range, so
# typical thinking ends by itself, a runaway one is closed there, and the answer gets the
# rest of the budget the allowance planned for it.
from longwrite.defaults import THINK_TOKENS
from longwrite.engines.base import DEFAULT_MAX_TOKENS, MODEL_CONTEXT
from longwrite.io.counting import count_words
from longwrite.prompt.request import Request

HEADROOM = 1.25  # answer tokens allowed per expected answer token
DEFAULT_CONTEXT = MODEL_CONTEXT  # when the engine cannot say
TOKENS_PER_WORD = {"en": 1.4, "zh": 0.85}

SAMPLES = {
    "en": (
        "# Tides and the people who read them\n\n"
        "Twice a day, almost everywhere along the coast, the sea climbs the shore and then "
        "withdraws. Fishermen, harbour pilots and children digging on the beach all learn "
        "the rhythm, even if few of them could say where it comes from. The short answer is "
        "the Moon: its pull is slightly stronger on the near side of the Earth than on the "
        "far side, and that difference stretches the oceans into two gentle bulges.\n\n"
        "## Why two a day?\n\n"
        "- The Earth turns beneath both bulges once a day, so most places pass through two.\n"
        "- The Sun adds a smaller tide of its own; when it lines up with the Moon, at new and "
        "full moon, the range grows (spring tides), and at the quarters it shrinks.\n"
        "- Coastlines, basins and the depth of the water shape the rest, which is why the "
        "Bay of Fundy sees a range of sixteen metres while parts of the Mediterranean barely "
        "notice a change.\n\n"
        "People have used this motion for a very long time. Tide mills ground grain in medieval "
        "Europe, and today barrages and underwater turbines turn the same energy into "
        "electricity, quietly and on a schedule that can be predicted years ahead."
    ),
    "zh": (
        "# 秋\n\n"
        "秋天来得很轻。早晨推开窗，空气里多了一丝凉意，楼下的梧桐叶子开始泛黄，风一吹，"
        "便有几片打着旋儿落下来。街边卖烤红薯的小摊又出现了，甜香顺着巷子飘得很远。\n\n"
        "## 田野\n\n"
        "- 稻子熟了，金黄一片，农人弯着腰收割，脸上带着笑。\n"
        "- 柿子挂在枝头，像一盏盏小灯笼，照亮了灰色的院墙。\n"
        "- 远处的山被染成深浅不一的红与黄，层层叠叠，如同一幅慢慢展开的画。\n\n"
        "古人说“自古逢秋悲寂寥”，可秋天并不只有萧瑟。它是一年里最从容的季节："
        "夏天的热闹退去了，冬天的严寒还没有到来，人们终于可以停下脚步，"
        "看一看走过的路，想一想来年的事。"
    ),
}


@dataclass(frozen=True)
class Budget:
    """The resolved token budget of one request; `--dry-run --json` shows it."""

    max_tokens: int
    prompt_tokens: int
    context: int
    think_tokens: int
    tokens_per_word: float
    estimate: str  # "tokenizer" | "tiktoken" | "table"
    max_words: int  # the longest answer, in words, that fits in one pass
    fits: bool  # whether the target's range fits in one pass

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


CountTokens = Callable[[str], int | None]


def _tiktoken_counter() -> CountTokens | None:
    """cl100k_base's counter, tried only where a tiktoken cache folder exists.

    tiktoken downloads an encoding on first use; without its cache folder we do not try, so an
    offline `--dry-run` never waits on the network. Any failure falls back to the table.
    """
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cache_dir = Path(cache) if cache else Path(tempfile.gettempdir()) / "data-gym-cache"
    if not cache_dir.is_dir():
        return None
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("cl100k_base")
    except Exception:  # noqa: BLE001 - not cached, offline, or not installed
        return None
    return lambda text: len(encoding.encode(text))


def tokens_per_word(language: str, count_tokens: CountTokens | None = None) -> tuple[float, str]:
    """(tokens per LongBench-Write word, how it was estimated) for `language`."""
    sample = SAMPLES.get(language, SAMPLES["en"])
    for source, counter in (("tokenizer", count_tokens), ("tiktoken", None)):
        if source == "tiktoken":
            counter = _tiktoken_counter()
        if counter is None:
            continue
        tokens = counter(sample)
        if tokens:
            return tokens / count_words(sample), source
    return TOKENS_PER_WORD.get(language, TOKENS_PER_WORD["en"]), "table"


def plan_budget(
    prompt: str,
    *,
    language: str,
    target_hi: int | None,
    think: bool = True,
    context: int | None = None,
    count_tokens: CountTokens | None = None,
    think_tokens: int = THINK_TOKENS,
) -> Budget:
    """The `max_tokens` for `prompt` aiming at answers of at most `target_hi` words."""
    ctx = context or DEFAULT_CONTEXT
    tpw, source = tokens_per_word(language, count_tokens)
    measured = count_tokens(prompt) if count_tokens is not None else None
    prompt_tokens = measured if measured is not None else math.ceil(len(prompt) / 3)
    room = max(ctx - prompt_tokens, 0)
    think_tokens = (think_tokens or THINK_TOKENS) if think else 0  # 0: no cap, same allowance
    per_word = tpw * HEADROOM
    max_words = max(int((room - think_tokens) / per_word), 0)
    if target_hi is None:
        wanted = DEFAULT_MAX_TOKENS
    else:
        wanted = think_tokens + math.ceil(target_hi * per_word)
    return Budget(
        max_tokens=max(min(wanted, room), 1),
        prompt_tokens=prompt_tokens,
        context=ctx,
        think_tokens=think_tokens,
        tokens_per_word=round(tpw, 4),
        estimate=source,
        max_words=max_words,
        fits=target_hi is None or target_hi <= max_words,
    )


def with_budget(
    request: Request,
    budget_hi: int | None,
    *,
    context: int | None = None,
    count_tokens: Callable[[str], int | None] | None = None,
    keep_max_tokens: bool = False,
    think_tokens: int = THINK_TOKENS,
) -> tuple[Request, Budget]:
    """`request` with `max_tokens` from the budget (unless the user fixed it)."""
    budget = plan_budget(
        request.prompt,
        language=request.language,
        target_hi=budget_hi,
        think=request.think,
        context=context,
        count_tokens=count_tokens,
        think_tokens=think_tokens,
    )
    if keep_max_tokens:
        return request, budget
    return replace(
        request, sampling=replace(request.sampling, max_tokens=budget.max_tokens)
    ), budget
