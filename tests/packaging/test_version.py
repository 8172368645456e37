"""The version is written once, in ``flightos.__version__``; the package metadata reads it from there."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

import pytest

import flightos

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_takes_the_version_from_the_package() -> None:
    """pyproject.toml writes no version of its own: setuptools reads ``flightos.__version__``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "flightos.__version__"}


def test_the_version_is_a_literal_setuptools_can_read_without_importing() -> None:
    """A plain string literal, so a build reads it statically (no imports of zmq or psutil at build time)."""
    tree = ast.parse((ROOT / "flightos" / "__init__.py").read_text())
    found = [
        n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign)
        and isinstance(n.value, ast.Constant)
        and any(isinstance(t, ast.Name) and t.id == "__version__" for t in n.targets)
    ]
    assert found == [flightos.__version__]


def test_installed_metadata_agrees() -> None:
    """The installed distribution reports the same version (reinstall after a bump if this fails)."""
    try:
        installed = importlib.metadata.version("flightos")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("flightos is not installed")
    assert installed == flightos.__version__
