"""`longwrite doctor` against faked machines, and for real on this one.

The fakes are `Machine` snapshots with the metadata real wheels carry (vLLM pins its torch and
bounds transformers; TRL's `vllm` extra bounds vLLM), GPUs as `nvidia-smi` reports them (a
script standing in for it on PATH), and a scripted OpenAI-compatible server on loopback.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from longwrite.doctor import checks as doctor
from longwrite.doctor.checks import run_checks
from longwrite.doctor.gather import GiB, Gpu, Machine, gather, nvidia_gpus, runlog_home
from longwrite.doctor.gather import torch_build_from_metadata as build
from longwrite.doctor.matrix import load

ROOT = Path(__file__).resolve().parent.parent
H100 = Gpu("NVIDIA H100 80GB HBM3", 81559 * 2**20)
VLLM_033 = ["torch==2.14.0", "transformers<5.21.0,>=5.16.1", "numpy"]
VLLM_031 = ["torch==2.13.0", "transformers<5.18.0,>=5.10.4"]
TRL_116 = [
    "accelerate>=1.10.1",
    "transformers>=4.56.2",
    'deepspeed>=0.18.6; extra == "deepspeed"',
    'vllm<=0.31.0,>=0.22.0; extra == "vllm"',
]


def machine(tmp_path: Path, **versions: str) -> Machine:
    """A healthy inference box (vLLM 0.33 on 2 x H100) with `versions` changed (`""`: removed)."""
    have = {"torch": "2.14.0", "vllm": "0.33.0", "transformers": "5.20.0", "accelerate": "1.15.0"}
    have.update({k.replace("_", "-"): v for k, v in versions.items()})
    have = {k: v for k, v in have.items() if v}
    requires = {"vllm": VLLM_031 if have.get("vllm") == "0.31.0" else VLLM_033}
    requires["trl"] = TRL_116
    return Machine(
        python="3.11.7", system="Linux", versions=have, requires=requires,
        torch_build="CUDA 12.8", gpus=[H100, H100], gpu_source="nvidia-smi", home=tmp_path,
    )  # fmt: skip


def by_name(found: list[doctor.Check]) -> dict[str, doctor.Check]:
    names = [c.name for c in found]
    assert len(names) == len(set(names)), names  # one line per finding
    return {c.name: c for c in found}


def problems(found: list[doctor.Check]) -> dict[str, str | None]:
    return {c.name: c.fix for c in found if c.status == doctor.PROBLEM}


def test_a_healthy_gpu_box_has_no_problem(tmp_path):
    found = by_name(run_checks(machine(tmp_path), load()))
    assert problems(found.values()) == {}
    assert found["vllm"].found == "vllm 0.33.0 (tested: vllm-newest)"
    assert found["matrix"].status == doctor.OK and found["matrix"].data["row"] == "vllm-newest"
    assert found["gpus"].found == "2 x NVIDIA H100 80GB HBM3 (79.6 GiB each) (via nvidia-smi)"
    assert found["fit"].data == {
        "model": "THU-KEG/LongWriter-Zero-32B", "engine": "vllm", "tp": 2,
        "need_gib": pytest.approx(38.5, abs=0.5), "usable_gib": pytest.approx(71.7, abs=0.1),
    }  # fmt: skip
    assert found["server"].status == doctor.ABSENT and found["deepspeed"].status == doctor.ABSENT


def test_the_rl_row_is_healthy_too(tmp_path):
    m = machine(tmp_path, vllm="0.31.0", trl="1.16.0", torch="2.13.0", transformers="5.17.0")
    found = by_name(run_checks(m, load()))
    assert problems(found.values()) == {}
    assert found["matrix"].data["row"] == "vllm-rl"


@pytest.mark.parametrize(
    ("change", "name", "fix"),
    [
        ({"vllm": "0.35.0"}, "vllm", "pip install 'vllm==0.33.0'"),
        ({"vllm": "0.32.0"}, "vllm", "pip install 'vllm==0.33.0'"),
        ({"trl": "1.16.0"}, "vllm", "pip install 'vllm==0.31.0'"),  # TRL supports 0.22-0.31
        ({"trl": "1.15.0", "vllm": "0.31.0", "torch": "2.13.0", "transformers": "5.17.0"},
         "trl", "pip install 'trl==1.16.0'"),
        ({"torch": "2.15.0"}, "torch", "pip install 'torch==2.14.0'"),  # vLLM pins its torch
        ({"transformers": "5.24.0"}, "transformers", "pip install 'transformers<5.21.0,>=5.16.1'"),
        ({"torch": "2.2.0", "vllm": ""}, "torch", "pip install 'torch>=2.3'"),
        ({"transformers": "4.40.0", "vllm": ""}, "transformers",
         "pip install 'transformers>=4.46'"),
        ({"accelerate": "0.30.0"}, "accelerate", "pip install 'accelerate>=1.0'"),
        ({"trl": "1.16.0", "vllm": "", "accelerate": "1.9.0"}, "accelerate",
         "pip install 'accelerate>=1.10.1'"),  # TRL's own floor
        ({"deepspeed": "0.17.0"}, "deepspeed", "pip install 'deepspeed>=0.18.6'"),
        ({"flash_attn": "2.1.0"}, "flash-attn", "pip install 'flash-attn>=2.3.3'"),
    ],
)  # fmt: skip
def test_each_mismatch_is_one_problem_with_its_fix(tmp_path, change, name, fix):
    found = problems(by_name(run_checks(machine(tmp_path, **change), load())).values())
    assert found == {name: fix}


def test_a_cpu_build_of_torch_on_a_gpu_box(tmp_path):
    m = machine(tmp_path)
    m.torch_build = "CPU"
    found = problems(run_checks(m, load()))
    assert found == {
        "torch": "pip install --force-reinstall --index-url https://pypi.org/simple 'torch==2.14.0'"
    }


def test_an_untested_but_consistent_combination_is_a_warning(tmp_path):
    m = machine(tmp_path, vllm="", torch="2.15.0", transformers="5.26.0")
    found = by_name(run_checks(m, load()))
    assert problems(found.values()) == {}
    assert found["fit"].status == doctor.WARN  # transformers runs it; vllm would, faster
    assert found["fit"].fix == "pip install 'longwrite[vllm]'"
    assert found["matrix"].status == doctor.WARN
    assert found["matrix"].fix == (
        "pip install 'torch==2.13.0' 'transformers==5.25.0' 'accelerate==1.16.0'"
    )


def test_what_fits_follows_the_gpus(tmp_path):
    m = machine(tmp_path)
    for gpus, engine, tp in [
        ([H100], None, None),  # 65 GB of weights and a 32k KV cache do not fit one 80 GB GPU
        ([Gpu("NVIDIA H200", 143771 * 2**20)], "vllm", 1),
        ([Gpu("NVIDIA L40S", 46068 * 2**20)] * 2, "vllm", 2),
        ([Gpu("NVIDIA GeForce RTX 4090", 24564 * 2**20)] * 6, "vllm", 4),
        ([Gpu("Tesla T4", 15360 * 2**20)] * 8, "vllm", 8),
        ([Gpu("NVIDIA A100-SXM4-40GB", 40960 * 2**20)] * 3, "transformers", None),  # tp 2 is short
    ]:
        m.gpus = gpus
        fit = by_name(run_checks(m, load()))["fit"]
        assert (fit.data["engine"], fit.data["tp"]) == (engine, tp), gpus[0].name
        assert (fit.status == doctor.PROBLEM) == (engine is None)
    assert "longwrite serve --tp 2" in fit.fix if engine is None else True


def test_no_gpu_but_a_server_that_runs_the_model_is_fine(tmp_path, models_server):
    m = machine(tmp_path, vllm="")
    m.gpus, m.gpu_source, m.server = [], "none", models_server(["THU-KEG/LongWriter-Zero-32B"])
    found = by_name(run_checks(m, load()))
    assert problems(found.values()) == {}
    assert found["server"].found.endswith("serves THU-KEG/LongWriter-Zero-32B (context 32768)")
    assert found["fit"].data["engine"] == "openai"
    m.server = models_server(["Qwen/Qwen2.5-7B"])
    assert problems(run_checks(m, load())).keys() == {"fit"}


def test_an_unreachable_server_is_one_line(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    m = machine(tmp_path)
    m.server = f"http://127.0.0.1:{port}"
    server = by_name(run_checks(m, load()))["server"]
    assert server.status == doctor.PROBLEM and "\n" not in server.found
    assert server.fix == "start it (`longwrite serve`) or fix LONGWRITE_SERVER"


def test_the_run_log_home(tmp_path):
    assert runlog_home({"LONGWRITE_HOME": "~/lw"}) == Path("~/lw").expanduser()
    assert runlog_home({"XDG_DATA_HOME": "/data"}) == Path("/data/longwrite")
    assert runlog_home({"HOME": "/h"}) == Path("~/.local/share/longwrite").expanduser()
    m = machine(tmp_path / "not" / "yet")  # created on first use: its parent must be writable
    assert by_name(run_checks(m, load()))["home"].status == doctor.OK
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    m.home = blocker / "longwrite"
    home = by_name(run_checks(m, load()))["home"]
    assert home.status == doctor.PROBLEM and home.fix.startswith("export LONGWRITE_HOME=")
    assert list(tmp_path.iterdir()) == [blocker]  # doctor wrote nothing


def test_the_torch_build_from_its_metadata():
    cuda = ['nvidia-cuda-runtime-cu12==12.8.90; platform_system == "Linux"']
    assert build("2.13.0+cpu", [], "Linux") == "CPU"
    assert build("2.14.0+cu128", [], "Linux") == "CUDA 12.8"
    assert build("2.14.0+rocm6.3", [], "Linux") == "ROCm 6.3"
    assert build("2.14.0", cuda, "Linux") == "CUDA 12.8"
    assert build("2.14.0", ["filelock"], "Linux") == "CPU"


NVIDIA_SMI = """#!/bin/sh
case "$*" in *--query-gpu=index,uuid,name,memory.total*--format=csv,noheader,nounits*) ;;
  *) echo "unexpected: $*" >&2; exit 3 ;; esac
{body}
"""


def fake_nvidia_smi(tmp_path: Path, body: str) -> dict[str, str]:
    exe = tmp_path / "bin" / "nvidia-smi"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(NVIDIA_SMI.format(body=body))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{exe.parent}{os.pathsep}/usr/bin:/bin"}


def test_gpus_as_nvidia_smi_lists_them(tmp_path):
    env = fake_nvidia_smi(
        tmp_path,
        'echo "0, GPU-1111aaaa, NVIDIA H100 80GB HBM3, 81559"\n'
        'echo "1, GPU-2222bbbb, NVIDIA A100-SXM4-40GB, 40960"',
    )
    gpus, error, found = nvidia_gpus(env)
    assert found and error is None
    assert [(g.name, g.memory / GiB) for g in gpus] == [
        ("NVIDIA H100 80GB HBM3", pytest.approx(79.65, abs=0.01)),
        ("NVIDIA A100-SXM4-40GB", 40.0),
    ]
    assert [g.name for g in nvidia_gpus({**env, "CUDA_VISIBLE_DEVICES": "1"})[0]] == [
        "NVIDIA A100-SXM4-40GB"
    ]
    assert nvidia_gpus({**env, "CUDA_VISIBLE_DEVICES": "GPU-2222,0"})[0] == gpus[::-1]
    assert nvidia_gpus({**env, "CUDA_VISIBLE_DEVICES": ""})[0] == []


def test_a_broken_driver_is_a_problem(tmp_path):
    env = fake_nvidia_smi(
        tmp_path,
        'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver."\n'
        "exit 9",
    )
    m = gather(env={**env, "HOME": str(tmp_path)})
    gpus = by_name(run_checks(m, load()))["gpus"]
    assert gpus.status == doctor.PROBLEM
    assert gpus.found == (
        "nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate with the "
        "NVIDIA driver."
    )


def test_a_package_that_does_not_import(tmp_path, monkeypatch):
    from longwrite.doctor import gather as gathering

    monkeypatch.setitem(gathering.MODULES, "flash-attn", "no_such_module_here")
    monkeypatch.setattr(gathering.metadata, "version", lambda d: "2.7.0")
    monkeypatch.setattr(gathering.metadata, "requires", lambda d: [])
    m = gathering.gather(("flash-attn",), env={"PATH": "/nonexistent", "HOME": str(tmp_path)})
    check = by_name(run_checks(m, load()))["import flash-attn"]
    assert check.status == doctor.PROBLEM
    assert check.found.startswith("import flash-attn failed: ModuleNotFoundError")
    assert check.fix == "pip install --force-reinstall 'flash-attn==2.7.0'"


# --- the command ----------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {})}
    env.pop("LONGWRITE_SERVER", None)
    return subprocess.run(
        [sys.executable, "-m", "longwrite", "doctor", *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
    )  # fmt: skip


def test_doctor_on_this_machine_reports_and_imports_nothing_heavy(tmp_path):
    code = (
        "import sys, json\n"
        "from longwrite.doctor.checks import run_checks\n"
        "from longwrite.doctor.gather import gather\n"
        "from longwrite.doctor.matrix import load\n"
        "run_checks(gather(), load())\n"
        "print(json.dumps(sorted(m for m in ('torch', 'vllm', 'trl', 'transformers',"
        " 'accelerate', 'deepspeed') if m in sys.modules)))\n"
    )
    env = {**os.environ, "LONGWRITE_HOME": str(tmp_path)}
    env.pop("LONGWRITE_SERVER", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_the_json_report_follows_the_documented_schema(tmp_path):
    proc = run_cli("--json", env={"LONGWRITE_HOME": str(tmp_path)})
    report = json.loads(proc.stdout)
    readme = (ROOT / "docs" / "doctor.md").read_text()
    section = readme[readme.index("## `longwrite doctor --json`") :]
    documented = json.loads(section[section.index("```json") + 7 : section.index("```\n", 10)])
    assert set(report) == set(documented)
    assert all(set(c) == set(documented["checks"][0]) for c in report["checks"])
    assert {c["status"] for c in report["checks"]} <= {"ok", "warn", "problem", "absent"}
    names = [c["name"] for c in report["checks"] if not c["name"].startswith("import ")]
    for name in names:
        assert f"`{name}`" in section, f"check {name} is not documented"
    assert report["ok"] == (proc.returncode == 0)
    assert report["ok"] == all(c["status"] != "problem" for c in report["checks"])
    assert [r["name"] for r in report["tested"]] == [r.name for r in load().rows]
    problems_here = [c for c in report["checks"] if c["status"] == "problem"]
    assert all(c["fix"] for c in problems_here)
    assert proc.stderr == ""


def test_the_text_report_puts_each_problem_and_its_fix_on_one_line(tmp_path):
    proc = run_cli(env={"LONGWRITE_HOME": str(tmp_path)})
    report = json.loads(run_cli("--json", env={"LONGWRITE_HOME": str(tmp_path)}).stdout)
    lines = proc.stdout.splitlines()
    for check in report["checks"]:
        if check["status"] == "problem":
            assert any(
                line.startswith("PROBLEM") and check["found"] in line
                and line.endswith(f"-> fix: {check['fix']}") for line in lines
            ), check  # fmt: skip
    count = sum(c["status"] == "problem" for c in report["checks"])
    assert lines[-1] == ("all well" if report["ok"] else f"{count} problem(s)")
    assert proc.returncode == (0 if report["ok"] else 1)


def test_a_healthy_machine_exits_0(tmp_path, monkeypatch, capsys):
    from longwrite.cli.app import main
    from longwrite.doctor import gather as gathering

    monkeypatch.setattr(gathering, "gather", lambda names=(): machine(tmp_path))
    with pytest.raises(SystemExit) as ended:
        main(["doctor"])
    assert ended.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "all well" and not any(x.startswith("PROBLEM") for x in out)
    monkeypatch.setattr(gathering, "gather", lambda names=(): machine(tmp_path, vllm="0.35.0"))
    with pytest.raises(SystemExit) as ended:
        main(["doctor"])
    assert ended.value.code == 1
    out = capsys.readouterr().out
    assert "PROBLEM  vllm" in out and "-> fix: pip install 'vllm==0.33.0'" in out


def test_an_unknown_check_is_one_line_and_exit_2():
    proc = run_cli("--check", "tensorflow")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("longwrite: error: --check tensorflow: not a package")
    assert len(proc.stderr.splitlines()) == 1


# --- a scripted OpenAI-compatible server: GET /v1/models -------------------------------------


@pytest.fixture
def models_server():
    servers = []

    def start(models: list[str]) -> str:
        body = json.dumps(
            {"object": "list", "data": [
                {"id": m, "object": "model", "owned_by": "vllm", "max_model_len": 32768}
                for m in models
            ]}
        ).encode()  # fmt: skip

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                ok = self.path == "/v1/models"
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body if ok else b"{}")

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
