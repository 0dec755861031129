"""Whether LongWriter-Zero-32B fits the visible GPUs, in which engine, with which `--tp`.

The numbers are the model's (Qwen2.5-32B: 32.8e9 parameters, 64 layers, 8 key/value heads of
128 dimensions), so nothing is downloaded to answer. vLLM must hold, on each GPU within its
`--gpu-memory-utilization` share, a 1/tp slice of the bf16 weights and of the KV cache for one
sequence as long as the context (vLLM refuses to start otherwise), plus headroom for
activations and CUDA graphs; tensor parallelism splits the heads, so tp is a power of two.
The transformers engine spreads the layers over all GPUs (slowly): it needs the sum.
"""

from __future__ import annotations

from dataclasses import dataclass

from longwrite.doctor.gather import GiB, Gpu

MODEL = "THU-KEG/LongWriter-Zero-32B"
PARAMS = 32.76e9
LAYERS, KV_HEADS, HEAD_DIM = 64, 8, 128
BYTES = 2  # bf16
CONTEXT = 32768  # longwrite's --max-model-len
UTILIZATION = 0.9  # longwrite's --gpu-memory-utilization
HEADROOM = 4 * GiB  # per GPU: activations of vLLM's profiling run, CUDA graphs, NCCL
TPS = (1, 2, 4, 8)  # 40 query and 8 key/value heads split evenly over these


@dataclass(frozen=True)
class Fit:
    engine: str  # "vllm" or "transformers"
    tp: int | None  # vllm: the smallest --tp that fits
    need: int  # bytes per GPU (vllm) or in all (transformers)
    usable: int  # bytes per GPU (vllm) or in all (transformers)

    def describe(self) -> str:
        if self.engine == "vllm":
            return (
                f"{MODEL} fits in vllm with --tp {self.tp} or more "
                f"({self.need / GiB:.0f} of {self.usable / GiB:.0f} GiB usable per GPU)"
            )
        return (
            f"{MODEL} fits only in transformers spread over the GPUs, slowly "
            f"({self.need / GiB:.0f} of {self.usable / GiB:.0f} GiB)"
        )


def weights() -> int:
    return int(PARAMS * BYTES)


def kv_cache(tokens: int = CONTEXT) -> int:
    return 2 * LAYERS * KV_HEADS * HEAD_DIM * BYTES * tokens  # keys and values


def vllm_plan(gpus: list[Gpu], context: int = CONTEXT) -> Fit | None:
    """The smallest tensor-parallel size at which vLLM holds the model, or None."""
    if not gpus:
        return None
    usable = int(min(g.memory for g in gpus) * UTILIZATION)
    for tp in TPS:
        if tp > len(gpus):
            break
        need = (weights() + kv_cache(context)) // tp + HEADROOM
        if need <= usable:
            return Fit("vllm", tp, need, usable)
    return None


def transformers_plan(gpus: list[Gpu], context: int = CONTEXT) -> Fit | None:
    """The model spread over every GPU by transformers, if their memory holds it."""
    usable = int(sum(g.memory for g in gpus) * UTILIZATION)
    need = weights() + kv_cache(context) + HEADROOM * len(gpus)
    return Fit("transformers", None, need, usable) if gpus and need <= usable else None


def shortfall(gpus: list[Gpu]) -> str:
    """Why it does not fit, in words."""
    need = (weights() + kv_cache()) / GiB
    have = sum(g.memory for g in gpus) / GiB
    where = f"{len(gpus)} GPU(s) with {have:.0f} GiB in all" if gpus else "no GPU visible"
    what = f"bf16 weights and a {CONTEXT:,}-token KV cache"
    return f"{MODEL} needs about {need:.0f} GiB of GPU memory ({what}); {where}"
