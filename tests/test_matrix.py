"""The tested matrix against what users install and what CI installs.

`longwrite/doctor/matrix.toml` is the one list of tested versions. These tests read pyproject's
extras and check each range against it, check that pip's choice for `longwrite[vllm]` and for
`longwrite[vllm,rl]` is a tested row (pip takes the newest release a range allows, and a vLLM
release pins one torch), and check the contract pin files and the Makefile that installs them.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from longwrite.doctor.matrix import Matrix, Row, contains, load

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load()


def _extras() -> dict[str, dict[str, SpecifierSet]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lists = {"core": project["dependencies"], **project["optional-dependencies"]}
    out: dict[str, dict[str, SpecifierSet]] = {}
    for extra, requirements in lists.items():
        for line in requirements:
            req = Requirement(line)
            out.setdefault(extra, {})[req.name] = req.specifier
    return out


def _allowed(extras: dict, chosen: tuple[str, ...], package: str) -> SpecifierSet:
    """What pip may pick for `package` when `chosen` extras are asked for (core included)."""
    spec = SpecifierSet()
    for extra in ("core", *chosen):
        spec &= extras[extra].get(package, SpecifierSet())
    return spec


def _neighbours(versions: list[str]) -> list[str]:
    """Every X.Y.0 from one minor below the oldest to one above the newest."""
    parsed = sorted(Version(v) for v in versions)
    major = parsed[0].major
    assert all(v.major == major for v in parsed)
    return [f"{major}.{m}.0" for m in range(parsed[0].minor - 1, parsed[-1].minor + 2)]


def _resolve(matrix: Matrix, extras: dict, chosen: tuple[str, ...]) -> Row:
    """pip's pick: the newest vLLM the extras allow whose own torch pin they allow too."""
    rows = matrix.rows_with("vllm")
    torch = _allowed(extras, chosen, "torch")
    fitting = [
        r
        for r in rows
        if contains(_allowed(extras, chosen, "vllm"), r.exact("vllm"))
        and contains(torch, r.exact("torch"))
    ]
    assert fitting, f"longwrite[{','.join(chosen)}] cannot resolve to any tested vLLM"
    return max(fitting, key=lambda r: Version(r.exact("vllm")))


def test_the_extras_state_the_matrix_ranges(matrix):
    extras = _extras()
    for extra, ranges in matrix.ranges.items():
        for package, spec in ranges.items():
            assert extras[extra].get(package) == spec, (extra, package, str(spec))
    # Pins belong in the CI files only: no `==` for a GPU-side package in any extra.
    for extra in ("core", "vllm", "rl"):
        for package in ("vllm", "trl", "torch", "transformers", "accelerate"):
            spec = extras[extra].get(package, SpecifierSet())
            assert all(s.operator != "==" for s in spec), (extra, package, str(spec))


def test_the_vllm_range_allows_exactly_the_tested_releases(matrix):
    tested = [r.exact("vllm") for r in matrix.rows_with("vllm")]
    allowed = _allowed(_extras(), ("vllm",), "vllm")
    for candidate in _neighbours(tested):
        assert contains(allowed, candidate) == (candidate in tested), candidate
    trl = [r.exact("trl") for r in matrix.rows_with("trl")]
    trl_allowed = _allowed(_extras(), ("rl",), "trl")
    for candidate in _neighbours(trl):
        assert contains(trl_allowed, candidate) == (candidate in trl), candidate


def test_longwrite_vllm_resolves_to_the_newest_tested_vllm(matrix):
    row = _resolve(matrix, _extras(), ("vllm",))
    newest = max(matrix.rows_with("vllm"), key=lambda r: Version(r.exact("vllm")))
    assert row is newest and row.uses == ("inference",)


def test_longwrite_vllm_rl_resolves_to_the_row_tested_for_rl(matrix):
    row = _resolve(matrix, _extras(), ("vllm", "rl"))
    assert "rl" in row.uses and row.exact("trl")
    assert contains(_allowed(_extras(), ("vllm", "rl"), "trl"), row.exact("trl"))


def test_every_tested_row_is_installable_from_the_extras(matrix):
    extras = _extras()
    for row in matrix.rows:
        chosen = tuple(e for e in ("vllm", "rl") if ("trl" if e == "rl" else e) in row.specs)
        for package in row.specs:
            version = row.exact(package)
            if version:
                assert contains(_allowed(extras, chosen, package), version), (row.name, package)


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name] = version
    return pins


def test_each_vllm_row_has_its_contract_pins_and_make_installs_them(matrix):
    makefile = (ROOT / "Makefile").read_text()
    rows = matrix.rows_with("vllm")
    assert len(rows) == 2 and len({r.contract for r in rows}) == 2
    for row in rows:
        assert _pins(ROOT / row.contract)["vllm"] == row.exact("vllm"), row.contract
        assert row.contract in makefile, f"make test does not install {row.contract}"


def test_the_readme_table_lists_every_row(matrix):
    readme = (ROOT / "docs" / "serving.md").read_text()
    table = readme[readme.index("## Tested versions") :]
    table = table[: table.index("\n## ", 1)] if "\n## " in table[1:] else table
    for row in matrix.rows:
        line = next((x for x in table.splitlines() if f"`{row.name}`" in x), None)
        assert line is not None, row.name
        for package in row.specs:
            version = row.exact(package)
            if version:
                assert re.search(rf"{package} {re.escape(version)}\b", line), (row.name, package)


def test_the_cpu_row_is_what_the_lock_installs(matrix):
    """`make test` installs .ci/requirements-lock.txt: the `cpu` row must say those versions,
    and the lock must pin every package (no ranges) with the CPU torch the row names."""
    lines = (ROOT / ".ci" / "requirements-lock.txt").read_text().splitlines()
    pins = {}
    for line in lines:
        if line.strip() and not line.startswith(("#", "-")):
            req = Requirement(line)
            (spec,) = req.specifier  # exactly one specifier per package
            assert spec.operator == "==", line
            pins[req.name.lower()] = spec.version
    row = next(r for r in matrix.rows if r.name == "cpu")
    for package in ("trl", "torch", "transformers", "accelerate"):
        assert pins[package] == row.exact(package), package
    makefile = (ROOT / "Makefile").read_text()
    assert "-r $(LOCK)" in makefile and "LOCK := .ci/requirements-lock.txt" in makefile
