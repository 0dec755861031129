"""What this machine has, gathered without importing torch, vllm or TRL.

Versions and each package's own requirements come from installed metadata; the torch build
from its version label (`+cpu`, `+cu128`, `+rocm6.3`) or, for PyPI's plain Linux wheel, from
the CUDA runtime it requires; the GPUs from `nvidia-smi` (the devices CUDA_VISIBLE_DEVICES
leaves visible). A package named with `--check` is imported for real, and torch then reports
its own build and devices (AMD and Apple GPUs are only seen that way).
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from longwrite.engines.base import ENV_API_KEY, ENV_SERVER
from longwrite.errors import one_line

# Distribution names doctor reports, and the module each imports as.
MODULES = {
    "torch": "torch",
    "vllm": "vllm",
    "trl": "trl",
    "transformers": "transformers",
    "accelerate": "accelerate",
    "deepspeed": "deepspeed",
    "flash-attn": "flash_attn",
}
GiB = 2**30


@dataclass(frozen=True)
class Gpu:
    name: str
    memory: int  # bytes


@dataclass
class Machine:
    """Everything the checks look at; tests build one by hand."""

    python: str
    system: str  # platform.system(): Linux, Darwin, Windows
    versions: dict[str, str]  # installed distributions (absent ones missing)
    requires: dict[str, list[str]] = field(default_factory=dict)  # dist -> Requires-Dist
    torch_build: str | None = None  # "CUDA 12.8", "ROCm 6.3", "CPU", "MPS"
    gpus: list[Gpu] = field(default_factory=list)
    gpu_source: str = "none"  # "nvidia-smi", "torch" or "none"
    gpu_error: str | None = None  # nvidia-smi (or torch) failed: why
    imports: dict[str, str | None] = field(default_factory=dict)  # --check: None if it imported
    server: str | None = None
    api_key: str | None = None
    home: Path = Path("~/.local/share/longwrite")


def runlog_home(env: dict[str, str] | None = None) -> Path:
    """Where runs are logged. On this machine: `longwrite.runlog`'s own rule. For a faked
    environment (tests): LONGWRITE_HOME, else $XDG_DATA_HOME/longwrite, else
    ~/.local/share/longwrite, which is that rule on Linux (platformdirs)."""
    if env is None:
        from longwrite.runlog.store import log_home

        return log_home()
    if env.get("LONGWRITE_HOME"):
        return Path(env["LONGWRITE_HOME"]).expanduser()
    base = env.get("XDG_DATA_HOME") or os.path.join("~", ".local", "share")
    return Path(base).expanduser() / "longwrite"


def torch_build_from_metadata(version: str, requires: list[str], system: str) -> str:
    """The accelerator a torch wheel was built for, from its version and requirements."""
    local = version.partition("+")[2]
    if local == "cpu":
        return "CPU"
    if local.startswith("cu") and local[2:].isdigit():
        return f"CUDA {local[2:-1]}.{local[-1]}"
    if local.startswith("rocm"):
        return f"ROCm {local[4:]}"
    for line in requires:
        name, _, rest = line.partition("==")
        if name.strip().startswith("nvidia-cuda-runtime") and rest:
            return "CUDA " + ".".join(rest.split(";")[0].strip().split(".")[:2])
    return "MPS" if system == "Darwin" and platform.machine() == "arm64" else "CPU"


def _visible(rows: list[list[str]], visible: str | None) -> list[list[str]]:
    """The nvidia-smi rows (index, uuid, ...) CUDA_VISIBLE_DEVICES leaves, in its order."""
    if visible is None:
        return rows
    kept = []
    for token in (t.strip() for t in visible.split(",")):
        match = [r for r in rows if token and (r[0] == token or r[1].startswith(token))]
        if not match:
            break  # CUDA stops at the first entry it cannot find
        kept.append(match[0])
    return kept


def nvidia_gpus(env: dict[str, str]) -> tuple[list[Gpu], str | None, bool]:
    """(GPUs, error, found): NVIDIA GPUs visible to CUDA, as nvidia-smi lists them."""
    exe = shutil.which("nvidia-smi", path=env.get("PATH"))
    if exe is None:
        return [], None, False
    query = "--query-gpu=index,uuid,name,memory.total"
    try:
        proc = subprocess.run(
            [exe, query, "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, env=env,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi failed: {one_line(exc)}", True
    if proc.returncode != 0:
        return [], f"nvidia-smi failed: {one_line(proc.stdout + proc.stderr)}", True
    rows = [[c.strip() for c in line.split(",")] for line in proc.stdout.splitlines() if line]
    try:
        rows = _visible(rows, env.get("CUDA_VISIBLE_DEVICES"))
        return [Gpu(r[2], int(float(r[3])) * 2**20) for r in rows], None, True
    except (IndexError, ValueError):
        return [], f"nvidia-smi said something unexpected: {one_line(proc.stdout)}", True


def torch_devices(machine: Machine) -> None:
    """Ask torch itself (imported: `--check torch`) for its build and devices."""
    import torch

    if getattr(torch.version, "hip", None):
        machine.torch_build = f"ROCm {torch.version.hip}"
    elif torch.version.cuda:
        machine.torch_build = f"CUDA {torch.version.cuda}"
    elif torch.backends.mps.is_available():
        machine.torch_build = "MPS"
    else:
        machine.torch_build = "CPU"
    try:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        props = [torch.cuda.get_device_properties(i) for i in range(count)]
    except RuntimeError as exc:  # a broken driver
        machine.gpu_error = f"torch cannot use the GPUs: {one_line(exc)}"
        return
    if props or machine.gpu_source == "none":
        machine.gpus = [Gpu(p.name, int(p.total_memory)) for p in props]
        machine.gpu_source = "torch"


def try_import(dist: str) -> str | None:
    """None when `dist` imports, else why not (one line)."""
    try:
        importlib.import_module(MODULES[dist])
    except Exception as exc:  # a broken binary raises anything: report it, do not crash
        return f"{type(exc).__name__}: {one_line(exc)}"
    return None


def gather(check: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Machine:
    faked = env is not None
    env = dict(os.environ if env is None else env)
    versions, requires = {}, {}
    for dist in MODULES:
        try:
            versions[dist] = metadata.version(dist)
            requires[dist] = metadata.requires(dist) or []
        except metadata.PackageNotFoundError:
            continue
    system = platform.system()
    machine = Machine(
        python=platform.python_version(),
        system=system,
        versions=versions,
        requires=requires,
        server=env.get(ENV_SERVER, "").strip() or None,
        api_key=env.get(ENV_API_KEY, "").strip() or None,
        home=runlog_home(env if faked else None),
    )
    if "torch" in versions:
        machine.torch_build = torch_build_from_metadata(
            versions["torch"], requires["torch"], system
        )
    gpus, error, found = nvidia_gpus(env)
    machine.gpus, machine.gpu_error = gpus, error
    machine.gpu_source = "nvidia-smi" if found else "none"
    for dist in check:
        if dist in versions:
            machine.imports[dist] = try_import(dist)
    if "torch" in check and "torch" in versions and machine.imports.get("torch") is None:
        torch_devices(machine)
    return machine
