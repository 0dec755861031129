"""The checks: a `Machine` in, one `Check` per line of the report out (pure, but for the
server and the run-log home, which are asked directly).

A problem is something that will not work: a version outside the tested matrix for vLLM or
TRL, a requirement a package declares and the machine breaks (vLLM pins its torch), a package
that does not import, an unreachable server, a home that cannot be written, a model that fits
nowhere. Each carries its fix, an exact command where there is one. A combination that breaks
no requirement but is no tested row is a warning.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

from longwrite.doctor import fit
from longwrite.doctor.gather import GiB, Machine
from longwrite.doctor.matrix import Matrix, Row, contains

OK, WARN, PROBLEM, ABSENT = "ok", "warn", "problem", "absent"
GPU_SIDE = ("vllm", "trl", "torch", "transformers", "accelerate", "deepspeed", "flash-attn")


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | problem | absent
    found: str  # one line: what this machine has
    fix: str | None = None  # one line: the command (or step) that fixes it
    data: dict[str, Any] = field(default_factory=dict)


def pip(*requirements: str) -> str:
    return "pip install " + " ".join(f"'{r}'" for r in requirements)


def _requirements(m: Machine, dist: str, extras: tuple[str, ...] = ()) -> list[Requirement]:
    """What installed `dist` declares (its base requirements and the `extras` named)."""
    out = []
    for line in m.requires.get(dist, []):
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        env = {"python_full_version": m.python, "python_version": m.python.rsplit(".", 1)[0]}
        if req.marker is None or any(_holds(req.marker, {**env, "extra": e}) for e in extras):
            out.append(req)
    return out


def _holds(marker: Marker, env: dict[str, str]) -> bool:
    try:
        return marker.evaluate(env)
    except Exception:  # an unknown marker variable: not ours to judge
        return False


def declared(m: Machine, dist: str, extras: tuple[str, ...] = ()) -> list[Check]:
    """Problems where an installed package breaks what `dist` requires of it."""
    out = []
    for req in _requirements(m, dist, extras):
        found = m.versions.get(req.name)
        if req.name not in GPU_SIDE or found is None or contains(req.specifier, found):
            continue
        wanted = f"{req.name}{req.specifier}"
        text = f"{req.name} {found}, but {dist} {m.versions[dist]} requires {wanted}"
        data = {"version": found, "required_by": dist, "requires": str(req.specifier)}
        out.append(Check(req.name, PROBLEM, text, pip(wanted), data))
    return out


def _row_for(matrix: Matrix, m: Machine) -> Row:
    """The tested row this machine should be on, from which of vLLM and TRL it has."""
    has_vllm, has_trl = "vllm" in m.versions, "trl" in m.versions
    for row in matrix.rows:
        if ("vllm" in row.specs) == has_vllm and (has_trl <= ("trl" in row.specs)):
            return row
    return matrix.rows[-1]


def python_check(m: Machine) -> Check:
    ok = Version(m.python) >= Version("3.11")
    fix = None if ok else "use Python 3.11 or newer (longwrite requires it)"
    return Check("python", OK if ok else PROBLEM, f"Python {m.python}", fix, {"version": m.python})


def torch_check(m: Machine, matrix: Matrix) -> list[Check]:
    floor = matrix.ranges["core"]["torch"]
    version = m.versions.get("torch")
    if version is None:
        return [Check("torch", PROBLEM, "torch is not installed", pip(f"torch{floor}"))]
    data = {"version": version, "build": m.torch_build}
    found = f"torch {version} ({m.torch_build} build)"
    if not contains(floor, version):
        return [Check("torch", PROBLEM, f"{found}; longwrite needs torch{floor}",
                      pip(f"torch{floor}"), data)]  # fmt: skip
    nvidia = m.gpu_source == "nvidia-smi" and m.gpus
    if nvidia and m.torch_build in ("CPU", "MPS"):
        base = Version(version).base_version
        fix = f"pip install --force-reinstall --index-url https://pypi.org/simple 'torch=={base}'"
        return [Check("torch", PROBLEM, f"{found}, but NVIDIA GPUs are visible", fix, data)]
    return [Check("torch", OK, found, None, data)]


def gpu_check(m: Machine) -> Check:
    gpus = [{"name": g.name, "memory_gib": round(g.memory / GiB, 1)} for g in m.gpus]
    data = {"source": m.gpu_source, "gpus": gpus}
    if m.gpu_error:
        fix = "make `nvidia-smi` work (is the NVIDIA driver loaded and matching?)"
        return Check("gpus", PROBLEM, m.gpu_error, fix, data)
    if not m.gpus:
        why = "nvidia-smi found none" if m.gpu_source == "nvidia-smi" else "no nvidia-smi"
        hint = "" if m.gpu_source == "torch" else "; AMD or Apple GPUs: add --check torch"
        return Check("gpus", ABSENT, f"no GPU visible ({why}{hint})", None, data)
    names = sorted({g.name for g in m.gpus})
    each = ", ".join(f"{g['name']} {g['memory_gib']:g} GiB" for g in gpus)
    if len(names) == 1:
        each = f"{len(gpus)} x {names[0]} ({gpus[0]['memory_gib']:g} GiB each)"
    return Check("gpus", OK, f"{each} (via {m.gpu_source})", None, data)


def vllm_check(m: Machine, matrix: Matrix) -> list[Check]:
    version = m.versions.get("vllm")
    if version is None:
        return [Check("vllm", ABSENT, "vllm is not installed (GPU inference)", None,
                      {"install": pip("longwrite[vllm]")})]  # fmt: skip
    target = _row_for(matrix, m)
    row = matrix.tested("vllm", version)
    data = {"version": version, "row": row.name if row else None}
    out = declared(m, "vllm")
    if "trl" in m.versions:  # TRL's own vLLM range (its `vllm` extra) for the rollouts
        for req in _requirements(m, "trl", ("vllm",)):
            if req.name == "vllm" and not contains(req.specifier, version):
                found = f"vllm {version}; trl {m.versions['trl']} supports vllm{req.specifier}"
                return [Check("vllm", PROBLEM, found, pip(target.requirement("vllm")), data), *out]
    if row is None or (target.exact("vllm") and "rl" in target.uses and row is not target):
        tested = ", ".join(r.exact("vllm") for r in matrix.rows_with("vllm"))
        found = f"vllm {version} is not in the tested matrix (tested: {tested})"
        return [Check("vllm", PROBLEM, found, pip(target.requirement("vllm")), data), *out]
    return [Check("vllm", OK, f"vllm {version} (tested: {row.name})", None, data), *out]


def trl_check(m: Machine, matrix: Matrix) -> list[Check]:
    version = m.versions.get("trl")
    if version is None:
        return [Check("trl", ABSENT, "trl is not installed (longwrite rl)", None,
                      {"install": pip("longwrite[rl]")})]  # fmt: skip
    row = matrix.tested("trl", version)
    data = {"version": version, "row": row.name if row else None}
    out = declared(m, "trl", ("deepspeed",) if "deepspeed" in m.versions else ())
    if row is None:
        wanted = matrix.rows_with("trl")[0].requirement("trl")
        found = f"trl {version} is not in the tested matrix ({wanted})"
        return [Check("trl", PROBLEM, found, pip(wanted), data), *out]
    return [Check("trl", OK, f"trl {version} (tested: {row.name})", None, data), *out]


def library_check(m: Machine, matrix: Matrix, dist: str) -> Check:
    """transformers and accelerate: longwrite's floor; which tested rows had this version."""
    version = m.versions.get(dist)
    floor = matrix.ranges["core"][dist]
    if version is None:
        return Check(dist, PROBLEM, f"{dist} is not installed", pip(f"{dist}{floor}"))
    rows = [r.name for r in matrix.rows_with(dist) if contains(r.specs[dist], version)]
    data = {"version": version, "rows": rows}
    if not contains(floor, version):
        return Check(dist, PROBLEM, f"{dist} {version}; longwrite needs {dist}{floor}",
                     pip(f"{dist}{floor}"), data)  # fmt: skip
    seen = f" (tested: {', '.join(rows)})" if rows else ""
    return Check(dist, OK, f"{dist} {version}{seen}", None, data)


def optional_check(m: Machine, matrix: Matrix, dist: str) -> Check:
    floor = matrix.optional[dist]
    version = m.versions.get(dist)
    if version is None:
        return Check(dist, ABSENT, f"{dist} is not installed (optional)", None,
                     {"install": pip(f"{dist}{floor}")})  # fmt: skip
    data = {"version": version}
    if not contains(floor, version):
        return Check(dist, PROBLEM, f"{dist} {version}; it needs {dist}{floor}",
                     pip(f"{dist}{floor}"), data)  # fmt: skip
    return Check(dist, OK, f"{dist} {version} (not run by CI: no GPU there)", None, data)


def matrix_check(m: Machine, matrix: Matrix) -> Check:
    """Is the whole combination a tested row?"""
    target = _row_for(matrix, m)
    for row in matrix.rows:
        same_kind = ("vllm" in row.specs) == ("vllm" in m.versions)
        has_trl = ("trl" in m.versions) <= ("trl" in row.specs)
        if not (same_kind and has_trl and set(m.versions) >= set(row.specs) - {"trl"}):
            continue
        if all(contains(s, m.versions[p]) for p, s in row.specs.items() if p in m.versions):
            return Check("matrix", OK, f"a tested combination: {row.name}", None,
                         {"row": row.name})  # fmt: skip
    wanted = [target.requirement(p) for p in target.specs if p in m.versions or p == "vllm"]
    found = f"not a tested combination (the nearest: {target.name})"
    return Check("matrix", WARN, found, pip(*wanted), {"row": None, "nearest": target.name})


def import_checks(m: Machine) -> list[Check]:
    out = []
    for dist, error in m.imports.items():
        if error is None:
            out.append(Check(f"import {dist}", OK, f"import {dist}: fine"))
            continue
        fix = pip(f"{dist}=={m.versions[dist]}").replace("install", "install --force-reinstall")
        out.append(Check(f"import {dist}", PROBLEM, f"import {dist} failed: {error}", fix))
    return out


def home_check(m: Machine) -> Check:
    """The run-log home must be writable (created on first use if it does not exist)."""
    path = m.home
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    data = {"path": str(path), "exists": path.exists()}
    try:
        if probe.is_dir():
            with tempfile.TemporaryFile(dir=probe):
                pass
            writable = True
        else:
            writable = False
    except OSError:
        writable = os.access(probe, os.W_OK)
    data["writable"] = writable
    if writable:
        return Check("home", OK, f"run-log home {path} is writable", None, data)
    fix = "export LONGWRITE_HOME=/a/writable/folder"
    return Check("home", PROBLEM, f"run-log home {path}: {probe} is not writable", fix, data)


def server_check(m: Machine) -> tuple[Check, list[str]]:
    """LONGWRITE_SERVER answers, and what it serves (only when it is set)."""
    from longwrite.engines.base import ENV_SERVER

    if m.server is None:
        return Check("server", ABSENT, f"{ENV_SERVER} is not set", None, {}), []
    from longwrite.engines.openai import OpenAIEngine
    from longwrite.errors import LongwriteError
    from longwrite.redact import public_url

    shown = public_url(m.server)  # a password in the URL is never printed
    try:
        engine = OpenAIEngine(m.server, None, api_key=m.api_key, timeout=15, connect_timeout=5)
    except LongwriteError as exc:
        fix = f"start it (`longwrite serve`) or fix {ENV_SERVER}"
        return Check("server", PROBLEM, f"{shown}: {exc}", fix, {"url": shown}), []
    served, context = engine.served, engine.info.context
    engine.close()
    data = {"url": engine.shown, "models": served, "context": context}
    found = f"{engine.shown} serves {', '.join(served)}"
    return Check(
        "server", OK, found + (f" (context {context})" if context else ""), None, data
    ), served


def fit_check(m: Machine, served: list[str]) -> Check:
    """Where LongWriter-Zero-32B runs: vLLM on these GPUs, else transformers, else a server."""
    fast, slow = fit.vllm_plan(m.gpus), fit.transformers_plan(m.gpus)
    data: dict[str, Any] = {"model": fit.MODEL, "engine": None, "tp": None}
    plan = fast if fast and ("vllm" in m.versions or not slow) else slow
    if plan is not None:
        data.update(engine=plan.engine, tp=plan.tp, need_gib=round(plan.need / GiB, 1),
                    usable_gib=round(plan.usable / GiB, 1))  # fmt: skip
    if plan is fast and fast is not None:
        if "vllm" in m.versions:
            return Check("fit", OK, fast.describe(), None, data)
        return Check("fit", PROBLEM, fast.describe() + "; vllm is not installed",
                     pip("longwrite[vllm]"), data)  # fmt: skip
    if slow is not None:
        found = slow.describe()
        if fast is not None:  # vLLM would fit too, and is many times faster
            found += f"; vllm would fit with --tp {fast.tp} and is not installed"
            return Check("fit", WARN, found, pip("longwrite[vllm]"), data)
        return Check("fit", OK, found, None, data)
    if any(name.rsplit("/", 1)[-1].lower().startswith("longwriter-zero") for name in served):
        data["engine"] = "openai"
        return Check("fit", OK, f"{fit.shortfall(m.gpus)}; the server runs it", None, data)
    fix = (
        "run `longwrite serve --tp 2` on a box with 2 x 80 GB GPUs or more, "
        "then export LONGWRITE_SERVER=http://HOST:8000"
    )
    return Check("fit", PROBLEM, fit.shortfall(m.gpus), fix, data)


def run_checks(m: Machine, matrix: Matrix) -> list[Check]:
    checks = [python_check(m), *torch_check(m, matrix), gpu_check(m)]
    checks += vllm_check(m, matrix) + trl_check(m, matrix)
    checks += [library_check(m, matrix, d) for d in ("transformers", "accelerate")]
    checks += [optional_check(m, matrix, d) for d in matrix.optional]
    checks += [matrix_check(m, matrix), *import_checks(m)]
    server, served = server_check(m)
    checks += [server, home_check(m), fit_check(m, served)]
    return _dedupe(checks)


def _dedupe(checks: list[Check]) -> list[Check]:
    """One line per finding, and a package's problem in place of its "ok" line (vLLM's and
    TRL's own requirements are checked with them but concern torch, transformers, ...)."""
    problems = {c.name: c for c in checks if c.status == PROBLEM}
    seen, out = set(), []
    for check in checks:
        if check.status == OK and check.name in problems:
            check = problems[check.name]
        key = (check.name, check.status, check.found)
        if key not in seen:
            seen.add(key)
            out.append(check)
    return out
