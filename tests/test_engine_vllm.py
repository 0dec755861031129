"""The vLLM engine, checked against the real vllm package on a machine without a GPU.

`make test` installs the pinned vllm wheel and the few packages its Python API needs
(.ci/vllm-contract.txt, without vllm's GPU dependencies). These tests build the exact settings
objects our engine and `longwrite serve` hand to vLLM and check them field by field, so a vLLM
upgrade that changes its API fails here rather than on a user's GPU box. They never skip: without
vllm they fail and say how to install it.

They run once for each vLLM of the tested matrix (longwrite/doctor/matrix.toml): here against the
newest, and from tests/test_matrix_vllm.py against the newest that TRL supports, installed in a
folder of its own; the pins checked are those of the matrix row of the vllm found.

Streaming is checked with a stand-in for vLLM's `AsyncLLM` that replays real `RequestOutput`
deltas, so the thread/queue bridge, the abort on close and the chunk shapes run for real.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
import tomllib
from pathlib import Path

import pytest

import longwrite.engines.vllm as vllm_engine
from longwrite.engines.base import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    Engine,
    EngineError,
    Sampling,
)
from longwrite.engines.vllm import (
    FINISH_REASONS,
    INSTALL_HINT,
    DeltaChunks,
    VLLMEngine,
    build_engine_args,
    build_sampling_params,
    default_tp,
    vllm_available,
)
from longwrite.serve import build_serve_command

# Importing vllm on torch's CPU build warns about torch.jit; that is vLLM's business, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / ".ci" / "vllm-contract.txt"
HOW_TO_INSTALL = (
    "run `make test` (it installs .ci/vllm-contract.txt), or: "
    "pip install --no-deps -r .ci/vllm-contract.txt"
)


@pytest.fixture(scope="module")
def vllm():
    """The real vllm package; its absence is a failure, never a skip."""
    try:
        import vllm
        from vllm.engine.arg_utils import AsyncEngineArgs  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"vllm is not importable ({exc}): {HOW_TO_INSTALL}", pytrace=False)
    return vllm


def _read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name] = version
    return pins


def _pins() -> dict[str, str]:
    """The pins of the matrix row of the installed vllm (its file over the first one)."""
    from longwrite.doctor.matrix import load

    pins = _read_pins(CONTRACT)
    row = load().tested("vllm", importlib.metadata.version("vllm"))
    assert row is not None, f"vllm {importlib.metadata.version('vllm')} is in no tested row"
    return {**pins, **_read_pins(ROOT / row.contract)}


# --- without vllm, without a GPU --------------------------------------------------------------


def test_without_vllm_the_engine_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    monkeypatch.setattr(vllm_engine, "gpu_count", lambda: 2)
    assert not vllm_available()
    with pytest.raises(EngineError) as caught:
        VLLMEngine("THU-KEG/LongWriter-Zero-32B")
    assert str(caught.value) == INSTALL_HINT
    assert "pip install 'longwrite[vllm]'" in INSTALL_HINT and "\n" not in INSTALL_HINT


def test_without_a_gpu_the_engine_says_so_in_one_line(monkeypatch):
    import torch

    monkeypatch.setattr(vllm_engine, "vllm_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert vllm_engine.gpu_count() == 0
    with pytest.raises(EngineError) as caught:
        VLLMEngine("THU-KEG/LongWriter-Zero-32B")
    message = str(caught.value)
    assert "CUDA GPU" in message and "\n" not in message


def test_more_tp_than_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(vllm_engine, "vllm_available", lambda: True)
    monkeypatch.setattr(vllm_engine, "gpu_count", lambda: 2)
    with pytest.raises(EngineError, match="tensor parallel size 4 needs 4 GPUs; 2 visible"):
        VLLMEngine("THU-KEG/LongWriter-Zero-32B", tp=4)


def test_on_a_gpu_box_the_engine_args_follow_the_gpus(vllm, monkeypatch, tmp_path):
    """Everything before the weights load, as on a 6-GPU box (vLLM itself is not started)."""
    monkeypatch.setattr(vllm_engine, "gpu_count", lambda: 6)
    for name in ("VLLM_LOGGING_STREAM", "VLLM_LOGGING_LEVEL", "VLLM_WORKER_MULTIPROC_METHOD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "DEBUG")  # the user's choice stays
    args = vllm_engine.checked_engine_args(str(tmp_path), None, 16384, 0.8, "auto", None)
    assert args.tensor_parallel_size == 4 and args.max_model_len == 16384
    assert os.environ["VLLM_LOGGING_STREAM"] == "ext://sys.stderr"  # never the document's stdout
    assert os.environ["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn"
    assert os.environ["VLLM_LOGGING_LEVEL"] == "DEBUG"
    with pytest.raises(EngineError, match="model not found"):
        vllm_engine.checked_engine_args(str(tmp_path / "nope"), 2, 16384, 0.8, "auto", None)


def test_default_tp_is_the_largest_power_of_two_that_fits():
    assert [default_tp(n) for n in range(10)] == [1, 1, 2, 2, 4, 4, 4, 4, 8, 8]


def test_vllm_available_does_not_import_vllm():
    code = (
        "import sys\n"
        "from longwrite.engines.vllm import vllm_available\n"
        "print(vllm_available(), 'vllm' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out == ["True", "False"], f"vllm must be installed here: {HOW_TO_INSTALL}"


# --- the contract: our settings objects against the pinned vllm --------------------------------


def test_installed_versions_are_the_pinned_ones(vllm):
    from packaging.requirements import Requirement

    pins = _pins()
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["vllm"]
    (requirement,) = (Requirement(line) for line in extra)
    assert requirement.name == "vllm"
    assert requirement.specifier.contains(pins["vllm"])  # users may get the version checked here
    installed = {name: importlib.metadata.version(name) for name in pins}
    assert installed == pins, HOW_TO_INSTALL


def test_sampling_params_carry_every_setting(vllm):
    from vllm.sampling_params import RequestOutputKind

    sampling = Sampling(
        max_tokens=1200,
        temperature=0.7,
        top_p=0.9,
        stop=("</answer>", "", "<|user|>"),
        seed=11,
        n=3,
        min_tokens=100,
        top_k=40,
        repetition_penalty=1.05,
    )
    params = build_sampling_params(sampling)
    assert isinstance(params, vllm.SamplingParams)
    assert params.output_kind is RequestOutputKind.DELTA
    assert (params.n, params.max_tokens, params.min_tokens) == (3, 1200, 100)
    assert (params.temperature, params.top_p, params.top_k) == (0.7, 0.9, 40)
    assert params.repetition_penalty == 1.05
    assert params.seed == 11
    assert params.stop == ["</answer>", "<|user|>"]  # empty stop strings dropped
    assert params.include_stop_str_in_output is False  # vLLM trims them for us
    assert params.skip_special_tokens is True


def test_default_sampling_is_the_model_card_with_extras_off(vllm):
    params = build_sampling_params(Sampling())
    assert (params.temperature, params.top_p, params.max_tokens) == (0.6, 0.95, 15500)
    assert params.stop == ["<|user|>", "<|endoftext|>", "</answer>"]
    assert params.top_k in (0, -1) and params.repetition_penalty == 1.0  # vLLM's "off"
    assert params.min_tokens == 0 and params.seed is None and params.n == 1


def test_greedy_with_several_candidates_is_one_line(vllm):
    with pytest.raises(EngineError) as caught:
        build_sampling_params(Sampling(temperature=0, n=2))
    assert "\n" not in str(caught.value) and "n" in str(caught.value)
    greedy = build_sampling_params(Sampling(temperature=0))
    assert greedy.temperature == 0 and greedy.n == 1


def test_engine_args_carry_every_setting(vllm, tmp_path):
    from vllm.engine.arg_utils import AsyncEngineArgs

    model = str(tmp_path)  # a local folder: with HF_HUB_OFFLINE, vLLM resolves hub ids
    args = build_engine_args(model, 4, 32768, 0.85, "bfloat16", 5)
    assert isinstance(args, AsyncEngineArgs)
    assert args.model == model
    assert args.tensor_parallel_size == 4
    assert args.max_model_len == 32768
    assert args.gpu_memory_utilization == 0.85
    assert args.dtype == "bfloat16"
    assert args.seed == 5
    assert args.enable_prefix_caching is True
    assert args.generation_config == "vllm"
    assert args.disable_log_stats is True
    unseeded = build_engine_args(model, 1, 4096, 0.9, "auto", None)
    assert unseeded.seed == AsyncEngineArgs(model=model).seed  # vLLM's own default


@pytest.mark.parametrize(
    ("tp", "max_model_len", "memory", "dtype"),
    [(0, 4096, 0.9, "auto"), (1, 0, 0.9, "auto"), (1, 4096, 1.5, "auto"), (1, 4096, 0.9, "fp4")],
)
def test_bad_engine_settings_are_one_line(vllm, tp, max_model_len, memory, dtype):
    with pytest.raises(EngineError) as caught:
        build_engine_args("m", tp, max_model_len, memory, dtype, None)
    assert "\n" not in str(caught.value)


def test_async_llm_has_what_the_engine_calls(vllm):
    from vllm.v1.engine.async_llm import AsyncLLM

    assert inspect.ismethod(AsyncLLM.from_engine_args)  # a classmethod
    assert inspect.isasyncgenfunction(AsyncLLM.generate)
    assert list(inspect.signature(AsyncLLM.generate).parameters)[1:4] == [
        "prompt",
        "sampling_params",
        "request_id",
    ]
    assert inspect.iscoroutinefunction(AsyncLLM.abort)
    assert "request_id" in inspect.signature(AsyncLLM.abort).parameters
    assert callable(AsyncLLM.shutdown) and not inspect.iscoroutinefunction(AsyncLLM.shutdown)
    assert callable(AsyncLLM.get_tokenizer)


def test_the_prompt_rendering_api_is_there(vllm):
    from vllm.renderers import BaseRenderer
    from vllm.renderers.inputs.preprocess import parse_model_prompt

    assert list(inspect.signature(parse_model_prompt).parameters) == ["model_config", "prompt"]
    assert list(inspect.signature(BaseRenderer.render_cmpl).parameters)[:2] == ["self", "prompts"]


def test_every_vllm_finish_reason_is_understood(vllm):
    from vllm.v1.engine import FINISH_REASON_STRINGS

    assert set(FINISH_REASON_STRINGS) == set(FINISH_REASONS) | {"error"}


def test_environment_variables_we_set_are_vllms(vllm):
    import vllm.envs

    names = ("VLLM_API_KEY", "VLLM_LOGGING_STREAM", "VLLM_LOGGING_LEVEL")
    for name in (*names, "VLLM_WORKER_MULTIPROC_METHOD"):
        assert name in vllm.envs.environment_variables, name


def test_the_vllm_command_serves_with_the_parser_we_check(vllm):
    scripts = {
        ep.name: ep.value
        for ep in importlib.metadata.distribution("vllm").entry_points
        if ep.group == "console_scripts"
    }
    assert scripts["vllm"] == "vllm.entrypoints.cli.main:main"
    serve_source = (Path(vllm.__file__).parent / "entrypoints" / "cli" / "serve.py").read_text()
    assert 'name = "serve"' in serve_source
    assert "make_arg_parser(serve_parser)" in serve_source
    assert "validate_parsed_serve_args" in serve_source


# vLLM on the CPU in a child process: VLLM_TARGET_DEVICE=cpu must be set before vllm resolves its
# platform, and vllm's global state stays out of this process. It parses our `vllm serve`
# command lines with vLLM's own parser, and builds the full engine config (the checks vLLM runs
# before loading weights) for the tiny local model from our engine args.
CPU_PROBE = textwrap.dedent(
    """\
    import json, sys, types
    from vllm.engine.arg_utils import AsyncEngineArgs
    try:  # where `vllm serve` takes its parser from: vLLM 0.33, else 0.31
        from vllm.entrypoints.common.cli_args import make_arg_parser, validate_parsed_serve_args
    except ImportError:
        from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.renderers import renderer_from_config
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    from longwrite.engines.vllm import _engine_input, build_engine_args

    job = json.loads(sys.argv[1])
    out = {"serve": []}
    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
    for cmd in job["commands"]:
        ns = parser.parse_args(cmd[2:])
        validate_parsed_serve_args(ns)
        ns.model = ns.model_tag  # as `vllm serve` does
        args = AsyncEngineArgs.from_cli_args(ns)
        out["serve"].append({
            "model": args.model, "port": ns.port, "host": ns.host, "api_key": ns.api_key,
            "served_model_name": args.served_model_name,
            "tensor_parallel_size": args.tensor_parallel_size,
            "data_parallel_size": args.data_parallel_size,
            "max_model_len": args.max_model_len,
            "enable_prefix_caching": args.enable_prefix_caching,
            "generation_config": args.generation_config,
            "enforce_eager": args.enforce_eager, "dtype": args.dtype,
        })
    for dtype in job["dtypes"]:
        parser.parse_args(["m", "--dtype", dtype])

    config = build_engine_args(job["model"], 1, 512, 0.5, "bfloat16", 7).create_engine_config()
    out["config"] = {
        "tensor_parallel_size": config.parallel_config.tensor_parallel_size,
        "max_model_len": config.model_config.max_model_len,
        "enable_prefix_caching": config.cache_config.enable_prefix_caching,
        "gpu_memory_utilization": config.cache_config.gpu_memory_utilization,
        "seed": config.model_config.seed,
        "dtype": str(config.model_config.dtype),
        "sampling_defaults": config.model_config.get_diff_sampling_param(),
        "model_generation_config": config.model_config.try_get_generation_config(),
    }
    renderer = renderer_from_config(config)
    ids = renderer.get_tokenizer().encode(job["prompt"], add_special_tokens=False)
    llm = types.SimpleNamespace(renderer=renderer, model_config=config.model_config)
    rendered = _engine_input(llm, ids)
    out["rendered"] = {"ids": ids, "prompt_token_ids": list(rendered["prompt_token_ids"])}
    print("RESULT=" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def cpu_probe(vllm, tiny_model_dir, tmp_path_factory):
    # The tiny model with sampling defaults in its generation_config.json, which ours must ignore.
    model = tmp_path_factory.mktemp("vllm") / "model"
    shutil.copytree(tiny_model_dir, model)
    gen = json.loads((model / "generation_config.json").read_text())
    gen.update(temperature=0.2, top_p=0.5, repetition_penalty=1.3)
    (model / "generation_config.json").write_text(json.dumps(gen))
    commands = [
        build_serve_command(tp=2, served_model_name=None, extra=[]),
        build_serve_command(
            model=str(model),
            tp=4,
            port=8123,
            host="0.0.0.0",
            max_model_len=65536,
            served_model_name="lwz",
            extra=["--enforce-eager", "--dtype", "bfloat16"],
        ),
        shlex.split(serve_dry_run("--dp", "2", "--tp", "2")),  # exactly what the CLI prints
    ]
    job = {
        "commands": commands,
        "dtypes": list(vllm_engine.DTYPES),
        "model": str(model),
        "prompt": "<think>plan</think><answer>A lighthouse keeper",
    }
    env = {
        **os.environ,
        "VLLM_TARGET_DEVICE": "cpu",
        # Online mode (offline, vLLM resolves hub ids to cached snapshots), with the hub on a
        # dead loopback port: nothing here may reach the network, and nothing needs to.
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_LOGGING_LEVEL": "WARNING",
    }
    proc = subprocess.run(
        [sys.executable, "-c", CPU_PROBE, json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT=")]
    assert proc.returncode == 0 and lines, f"vLLM on the CPU failed:\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("RESULT=")), model


def serve_dry_run(*args: str) -> str:
    """The command line `longwrite serve --dry-run ARGS` prints (in a child, as a user runs it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LONGWRITE_API_KEY", "VLLM_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-m", "longwrite", "serve", "--dry-run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_vllms_parser_accepts_our_serve_flags(cpu_probe):
    result, model = cpu_probe
    default, custom, _ = result["serve"]
    assert default == {
        "model": "THU-KEG/LongWriter-Zero-32B",
        "port": 8000,
        "host": "127.0.0.1",
        "api_key": None,  # never on the command line
        "served_model_name": None,
        "tensor_parallel_size": 2,
        "data_parallel_size": 1,
        "max_model_len": 32768,
        "enable_prefix_caching": True,
        "generation_config": "vllm",
        "enforce_eager": False,
        "dtype": "auto",
    }
    assert custom == {
        "model": str(model),
        "port": 8123,
        "host": "0.0.0.0",
        "api_key": None,
        "served_model_name": ["lwz"],
        "tensor_parallel_size": 4,
        "data_parallel_size": 1,
        "max_model_len": 65536,
        "enable_prefix_caching": True,
        "generation_config": "vllm",
        "enforce_eager": True,  # arguments after -- reach vLLM
        "dtype": "bfloat16",
    }


def test_serve_dp_is_data_parallel_replicas_of_tensor_parallel_ones(cpu_probe):
    """`longwrite serve --dp 2 --tp 2 --dry-run`, parsed by vLLM's own parser: two replicas
    behind one URL, each over two GPUs, with every flag of ours still there."""
    result, _ = cpu_probe
    parallel = result["serve"][2]
    assert parallel["data_parallel_size"] == 2 and parallel["tensor_parallel_size"] == 2
    assert parallel["model"] == "THU-KEG/LongWriter-Zero-32B" and parallel["port"] == 8000
    assert parallel["enable_prefix_caching"] and parallel["generation_config"] == "vllm"


def test_serve_and_the_engine_configure_vllm_alike(cpu_probe):
    result, _ = cpu_probe
    served = result["serve"][0]
    ours = build_engine_args(str(ROOT), 2, 32768, 0.9, "auto", None)
    for field in ("tensor_parallel_size", "max_model_len", "enable_prefix_caching"):
        assert served[field] == getattr(ours, field), field
    assert served["generation_config"] == ours.generation_config


def test_vllm_builds_a_full_config_from_our_engine_args(cpu_probe):
    config = cpu_probe[0]["config"]
    assert config["tensor_parallel_size"] == 1
    assert config["max_model_len"] == 512
    assert config["enable_prefix_caching"] is True
    assert config["gpu_memory_utilization"] == 0.5
    assert config["seed"] == 7
    assert config["dtype"] == "torch.bfloat16"
    # The model's sampling defaults are there, and vLLM ignores them with our settings.
    assert config["model_generation_config"]["temperature"] == 0.2
    assert config["sampling_defaults"] == {}


def test_the_prompt_reaches_vllm_as_our_tokens(cpu_probe):
    rendered = cpu_probe[0]["rendered"]
    assert rendered["ids"] and rendered["prompt_token_ids"] == rendered["ids"]


# --- streaming, with a stand-in for AsyncLLM ---------------------------------------------------


class FakeTokenizer:
    def __init__(self) -> None:
        self.special: list[bool] = []

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        self.special.append(add_special_tokens)
        return [ord(c) for c in text]


class FakeLLM:
    """Replays `script` (a list of steps, each a list of (index, text, tokens, finish)) as real
    vllm RequestOutput deltas. With `hold`, waits after the script until aborted; an abort ends
    every unfinished candidate with finish "abort", as vLLM does."""

    def __init__(self, script, *, hold: bool = False, fail: Exception | None = None) -> None:
        self.script = script
        self.hold = hold
        self.fail = fail
        self.tokenizer = FakeTokenizer()
        self.requests: list[tuple] = []
        self.aborted: list[str] = []
        self.ended: list[str] = []
        self.shutdowns = 0
        self._abort_events: dict[str, asyncio.Event] = {}

    def get_tokenizer(self) -> FakeTokenizer:
        return self.tokenizer

    def _event(self, request_id: str) -> asyncio.Event:
        return self._abort_events.setdefault(request_id, asyncio.Event())

    async def generate(self, prompt, params, request_id):
        from vllm.outputs import CompletionOutput, RequestOutput

        def output(step):
            outs = [
                CompletionOutput(
                    index=i,
                    text=text,
                    token_ids=list(range(tokens)),
                    cumulative_logprob=None,
                    logprobs=None,
                    finish_reason=finish,
                )
                for i, text, tokens, finish in step
            ]
            return RequestOutput(request_id, None, [1], None, outs, finished=False)

        self.requests.append((prompt, params, request_id))
        aborted = self._event(request_id)
        unfinished = set(range(params.n))
        try:
            if self.fail is not None:
                raise self.fail
            for step in self.script:
                await asyncio.sleep(0)
                if aborted.is_set():
                    break
                unfinished -= {i for i, _, _, finish in step if finish}
                yield output(step)
            if self.hold and unfinished:
                await aborted.wait()
            if aborted.is_set() and unfinished:
                yield output([(i, "", 0, "abort") for i in sorted(unfinished)])
        finally:
            self.ended.append(request_id)

    async def abort(self, request_id):
        self.aborted.append(request_id)
        self._event(request_id).set()

    def shutdown(self):
        self.shutdowns += 1


def _engine(fake: FakeLLM, **kwargs) -> VLLMEngine:
    return VLLMEngine("fake/model", engine_factory=lambda: fake, **kwargs)


def _chunks(engine: VLLMEngine, prompt: str = "hello", **sampling) -> list:
    return list(engine.stream(prompt, Sampling(**sampling)))


def test_deltas_become_chunks_with_their_tokens(vllm):
    fake = FakeLLM(
        [
            [(0, "Once", 2, None)],
            [(0, "", 1, None)],  # held back by vLLM (could start a stop string)
            [(0, " upon", 1, None)],
            [(0, " a time", 3, "stop")],
        ]
    )
    engine = _engine(fake)
    try:
        assert isinstance(engine, Engine)
        chunks = _chunks(engine)
    finally:
        engine.close()
    assert [(c.text, c.tokens, c.finish_reason) for c in chunks] == [
        ("Once", 2, None),
        (" upon", 2, None),
        (" a time", 3, FINISH_STOP),
    ]
    prompt, params, request_id = fake.requests[0]
    assert prompt == {"prompt_token_ids": [ord(c) for c in "hello"]}  # our tokens, no BOS
    assert fake.tokenizer.special == [False]
    assert params.output_kind.name == "DELTA"
    assert fake.ended == [request_id] and fake.aborted == []  # it ran to its end: no abort


def test_length_and_repetition_map_to_our_finish_reasons(vllm):
    for reason, ours in (("length", FINISH_LENGTH), ("repetition", FINISH_STOP)):
        engine = _engine(FakeLLM([[(0, "x", 1, reason)]]))
        try:
            assert _chunks(engine)[-1].finish_reason == ours
        finally:
            engine.close()


def test_candidates_interleave_and_each_finishes_once(vllm):
    fake = FakeLLM(
        [
            [(0, "a", 1, None), (1, "A", 1, None)],
            [(1, "B", 2, "length")],
            [(0, "b", 1, None)],
            [(0, "c", 1, "stop")],
        ]
    )
    engine = _engine(fake)
    try:
        chunks = _chunks(engine, n=2)
    finally:
        engine.close()
    for index, text, finish, tokens in ((0, "abc", FINISH_STOP, 3), (1, "AB", FINISH_LENGTH, 3)):
        mine = [c for c in chunks if c.index == index]
        assert "".join(c.text for c in mine) == text
        assert [c.finish_reason for c in mine][-1] == finish
        assert sum(c.finish_reason is not None for c in mine) == 1
        assert sum(c.tokens for c in mine) == tokens
    assert fake.requests[0][1].n == 2


def test_closing_the_stream_aborts_the_request(vllm):
    fake = FakeLLM([[(0, "first", 1, None)]], hold=True)
    engine = _engine(fake)
    try:
        stream = engine.stream("hello", Sampling())
        assert next(stream).text == "first"
        stream.close()  # Ctrl-C or break
        request_id = fake.requests[0][2]
        assert fake.aborted == [request_id]
        assert fake.ended == [request_id]  # vLLM's generator has ended too
    finally:
        engine.close()


def test_cancel_from_another_thread_ends_with_cancelled(vllm):
    fake = FakeLLM([[(0, "so far", 2, None)]], hold=True)
    engine = _engine(fake)
    try:
        stream = engine.stream("hello", Sampling())
        first = next(stream)
        threading.Timer(0.2, engine.cancel).start()
        rest = list(stream)
    finally:
        engine.close()
    assert first.text == "so far"
    assert [(c.text, c.finish_reason) for c in rest] == [("", FINISH_CANCELLED)]
    assert fake.aborted == [fake.requests[0][2]]


def test_a_prompt_longer_than_the_context_is_one_line(vllm):
    engine = _engine(FakeLLM([]), max_model_len=4)
    try:
        with pytest.raises(EngineError, match="the prompt is 5 tokens; the context is 4"):
            engine.stream("hello", Sampling())
    finally:
        engine.close()


def test_max_tokens_shrinks_to_the_room_left(vllm):
    fake = FakeLLM([[(0, "x", 1, "length")]])
    engine = _engine(fake, max_model_len=100)
    try:
        _chunks(engine, "hello", max_tokens=500, min_tokens=200)
    finally:
        engine.close()
    params = fake.requests[0][1]
    assert (params.max_tokens, params.min_tokens) == (95, 95)


def test_vllm_failures_are_one_line_errors(vllm):
    engine = _engine(FakeLLM([], fail=RuntimeError("engine core died\ntraceback...")))
    try:
        with pytest.raises(EngineError, match=r"^vllm failed: engine core died$"):
            _chunks(engine)
    finally:
        engine.close()
    engine = _engine(FakeLLM([[(0, "", 0, "error")]]))
    try:
        with pytest.raises(EngineError, match="internal error"):
            _chunks(engine)
    finally:
        engine.close()


def test_close_shuts_vllm_down_once(vllm):
    fake = FakeLLM([[(0, "x", 1, "stop")]])
    engine = _engine(fake, max_model_len=2048)
    thread = engine._loop.thread
    assert engine.count_tokens("four") == 4
    assert engine.info.name == "vllm" and engine.info.context == 2048
    assert engine.info.details == {"tp": "1", "dtype": "auto"}
    engine.close()
    engine.close()
    assert fake.shutdowns == 1
    assert not thread.is_alive()
    with pytest.raises(EngineError, match="closed"):
        engine.stream("hello", Sampling())


def test_a_failing_start_is_one_line_and_leaves_no_thread(vllm):
    before = {t for t in threading.enumerate() if t.name == "longwrite-vllm"}

    def broken():
        raise ValueError("No available memory for the cache blocks.\nTry increasing ...")

    with pytest.raises(EngineError) as caught:
        VLLMEngine("fake/model", engine_factory=broken)
    assert str(caught.value) == (
        "vllm could not start 'fake/model': No available memory for the cache blocks."
    )
    after = {t for t in threading.enumerate() if t.name == "longwrite-vllm" and t.is_alive()}
    assert after <= before


def test_delta_chunks_hold_tokens_until_text_arrives():
    from types import SimpleNamespace as NS

    def out(*items):
        return NS(
            outputs=[
                NS(index=i, text=t, token_ids=[0] * k, finish_reason=f) for i, t, k, f in items
            ]
        )

    chunks = DeltaChunks()
    assert chunks.feed(out((0, "", 3, None))) == []
    assert [(c.text, c.tokens) for c in chunks.feed(out((0, "ab", 1, None)))] == [("ab", 4)]
    last = chunks.feed(out((0, "", 2, "abort")))
    assert [(c.text, c.tokens, c.finish_reason) for c in last] == [("", 2, FINISH_CANCELLED)]
    assert chunks.finished == {0}
