"""The tested matrix (`matrix.toml`, shipped in the wheel) as typed data.

A version is "tested" when a row of the matrix contains it; a row holds a specifier per
package, so a vLLM row can carry vLLM's own torch pin and transformers range. The same file
drives the extras test and the contract tests, so what doctor calls tested is what CI ran.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

# The packages a row may name (everything else in a row is metadata).
PACKAGES = ("vllm", "trl", "torch", "transformers", "accelerate")


@dataclass(frozen=True)
class Row:
    """One tested combination."""

    name: str
    uses: tuple[str, ...]  # "inference", "rl"
    specs: dict[str, SpecifierSet]  # package -> what was tested
    contract: str | None = None  # the pins file of its vLLM contract test

    def exact(self, package: str) -> str | None:
        """The one version this row tested for `package`, when it names one (`==X`)."""
        spec = self.specs.get(package)
        if spec is None or len(spec) != 1:
            return None
        (only,) = spec
        return only.version if only.operator == "==" else None

    def requirement(self, package: str) -> str:
        """`package` as pip would take it for this row: `torch==2.14.0`."""
        return f"{package}{self.specs[package]}"


@dataclass(frozen=True)
class Matrix:
    ranges: dict[str, dict[str, SpecifierSet]]  # extra ("core", "vllm", "rl") -> package -> range
    optional: dict[str, SpecifierSet]
    rows: tuple[Row, ...]

    def rows_with(self, package: str) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if package in row.specs)

    def tested(self, package: str, version: str) -> Row | None:
        """The first row that tested `version` of `package`, else None."""
        rows = self.rows_with(package)
        return next((r for r in rows if contains(r.specs[package], version)), None)

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)


def contains(spec: SpecifierSet, version: str) -> bool:
    """`version` in `spec`, local labels (`+cpu`, `+cu128`) ignored; False if unparsable."""
    try:
        return spec.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def parse(text: str) -> Matrix:
    data = tomllib.loads(text)
    ranges = {
        extra: {name: SpecifierSet(spec) for name, spec in table.items()}
        for extra, table in data["ranges"].items()
    }
    optional = {name: SpecifierSet(spec) for name, spec in data.get("optional", {}).items()}
    rows = tuple(
        Row(
            name=row["name"],
            uses=tuple(row["for"]),
            specs={p: SpecifierSet(row[p]) for p in PACKAGES if p in row},
            contract=row.get("contract"),
        )
        for row in data["tested"]
    )
    return Matrix(ranges=ranges, optional=optional, rows=rows)


@cache
def load() -> Matrix:
    """The matrix shipped with this copy of longwrite."""
    return parse(resources.files(__package__).joinpath("matrix.toml").read_text("utf-8"))
