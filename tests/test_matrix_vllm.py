"""The second vLLM of the tested matrix: the newest one TRL supports, for RL rollouts.

`make test` installs it with `--no-deps` into `.venv/contract/vllm-rl` (.ci/vllm-contract-rl.txt),
beside the newest vLLM in the venv itself. Two vLLMs cannot share one interpreter, so each test
here runs a child process with that folder first on PYTHONPATH:

- the whole vLLM contract test (tests/test_engine_vllm.py) against it;
- TRL's vLLM-rollout configuration built from our recipes: TRL must accept this vLLM without
  its "unsupported version" warning; for `vllm-colocate`, the SamplingParams TRL builds from our
  generation settings and the engine config vLLM builds from the `LLM(...)` arguments TRL passes
  (on the CPU, for the tiny model); for `vllm-server`, our `longwrite rl serve-rollouts` command
  through TRL's own parser into the `vllm serve` command it runs, parsed by this vLLM's parser.

Like the first contract test, these never skip: without the folder they fail and say how to
install it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from longwrite.doctor.matrix import load

ROOT = Path(__file__).resolve().parent.parent
RL_VLLM = ROOT / ".venv" / "contract" / "vllm-rl"
HOW_TO_INSTALL = (
    "run `make test`, or: pip install --no-deps --target .venv/contract/vllm-rl "
    "-r .ci/vllm-contract-rl.txt"
)

pytestmark = pytest.mark.slow


def _row():
    return next(r for r in load().rows_with("vllm") if "rl" in r.uses)


def _env() -> dict[str, str]:
    if not (RL_VLLM / "vllm").is_dir():
        pytest.fail(f"the RL row's vLLM is not installed ({RL_VLLM}): {HOW_TO_INSTALL}", False)
    path = [str(RL_VLLM), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "VLLM_TARGET_DEVICE": "cpu",
        # Nothing here may reach the network: the hub is a dead loopback port.
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_LOGGING_LEVEL": "WARNING",
    }


def test_the_vllm_contract_holds_for_the_vllm_trl_supports():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         str(ROOT / "tests" / "test_engine_vllm.py")],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout


TRL_PROBE = textwrap.dedent(
    """\
    import json, sys, warnings
    job = json.loads(sys.argv[1])
    out = {}
    import vllm
    out["vllm"] = vllm.__version__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from trl.import_utils import is_vllm_available
        out["trl_accepts"] = is_vllm_available()
    out["trl_warnings"] = [str(w.message) for w in caught if "vLLM" in str(w.message)]

    from vllm import EngineArgs, SamplingParams
    from longwrite.rl.config import load_config
    from longwrite.rl.train import build_grpo_config

    # vllm-colocate: what trl.generation.vllm_generation.VLLMGeneration builds.
    cfg = load_config(job["recipe"], ["rollout.engine=vllm-colocate", "model=" + job["model"]],
                      processes=1)
    args = build_grpo_config(cfg, [1.0, 1.0])
    kwargs = {"n": 1, "repetition_penalty": args.repetition_penalty,
              "temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k or 0,
              "min_p": args.min_p or 0.0, "max_tokens": args.max_completion_length,
              "logprobs": 0}
    kwargs.update(args.generation_kwargs)
    params = SamplingParams(**kwargs)
    out["sampling"] = {"stop": list(params.stop), "temperature": params.temperature,
                       "top_p": params.top_p, "max_tokens": params.max_tokens}
    engine = EngineArgs(
        model=job["model"], tensor_parallel_size=args.vllm_tensor_parallel_size,
        gpu_memory_utilization=args.vllm_gpu_memory_utilization,
        max_model_len=args.vllm_max_model_length, enable_sleep_mode=args.vllm_enable_sleep_mode,
        distributed_executor_backend="external_launcher", seed=0,
        max_num_batched_tokens=4096, logprobs_mode="processed_logprobs",
    ).create_engine_config()
    out["colocate"] = {"tp": engine.parallel_config.tensor_parallel_size,
                       "memory": engine.cache_config.gpu_memory_utilization,
                       "max_model_len": engine.model_config.max_model_len}

    # vllm-server: `trl vllm-serve` as we start it, as TRL turns it into `vllm serve`.
    from trl.scripts.vllm_serve import build_command, make_parser
    script_args, extra = make_parser().parse_args_and_config(
        args=job["serve"][2:], return_remaining_strings=True)
    command = build_command(script_args, extra)
    try:
        from vllm.entrypoints.common.cli_args import make_arg_parser, validate_parsed_serve_args
    except ImportError:
        from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    ns = make_arg_parser(FlexibleArgumentParser(prog="vllm serve")).parse_args(
        command[command.index("serve") + 1:])
    validate_parsed_serve_args(ns)
    out["server"] = {"model": ns.model_tag, "port": ns.port, "host": ns.host,
                     "tp": ns.tensor_parallel_size, "dp": ns.data_parallel_size,
                     "memory": ns.gpu_memory_utilization, "max_model_len": ns.max_model_len,
                     "logprobs_mode": str(ns.logprobs_mode)}
    print("RESULT=" + json.dumps(out))
    """
)


def test_trl_builds_its_vllm_rollouts_with_the_vllm_it_supports(tiny_model_dir, tmp_path):
    from longwrite.cli.rl import serve_command
    from longwrite.engines.base import DEFAULT_STOP

    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "Write a 20-word slogan."}) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: tiny\ndata: {data}\noutput_dir: {tmp_path / 'run'}\n"
        "rollout:\n  num_generations: 4\n  max_completion_length: 16\n"
        "  vllm_gpu_memory_utilization: 0.4\n  vllm_max_model_length: 512\n"
        "train:\n  max_steps: 2\n  per_device_train_batch_size: 4\n  learning_rate: 1e-3\n"
    )
    serve = serve_command(
        str(tiny_model_dir), server="http://10.0.0.2:8123", tp=2, dp=1, max_model_len=512
    )
    job = {"recipe": str(recipe), "model": str(tiny_model_dir), "serve": serve}
    proc = subprocess.run(
        [sys.executable, "-c", TRL_PROBE, json.dumps(job)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT=")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    out = json.loads(lines[-1].removeprefix("RESULT="))
    assert out["vllm"] == _row().exact("vllm")
    assert out["trl_accepts"] is True and out["trl_warnings"] == []
    assert out["sampling"] == {
        "stop": list(DEFAULT_STOP), "temperature": 0.8, "top_p": 1.0, "max_tokens": 16
    }  # fmt: skip
    assert out["colocate"] == {"tp": 1, "memory": 0.4, "max_model_len": 512}
    assert out["server"] == {
        "model": str(tiny_model_dir), "port": 8123, "host": "0.0.0.0", "tp": 2, "dp": 1,
        "memory": 0.9, "max_model_len": 512, "logprobs_mode": "processed_logprobs",
    }  # fmt: skip


def test_the_newest_vllm_is_what_trl_warns_about():
    """The reason for two installs: TRL does not support the newest vLLM (in this process)."""
    import importlib.metadata
    import warnings

    from packaging.version import Version
    from trl import import_utils

    newest = max(load().rows_with("vllm"), key=lambda r: Version(r.exact("vllm")))
    assert importlib.metadata.version("vllm") == newest.exact("vllm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import_utils.is_vllm_available()
    assert any("supports vLLM versions" in str(w.message) for w in caught)
