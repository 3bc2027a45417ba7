"""The README holds what a newcomer types — get the code, install, open the course, run the tests — on every
platform it names, and states the Python version the package itself requires."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def _code_lines(text: str) -> list[str]:
    """Every line inside the fenced code blocks of ``text``, without comments."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


INSTALL = _code_lines(_section("Install and run"))


@pytest.mark.parametrize("command", [
    "cd diffcourse",                                                                          # the code
    "python3 -m venv .venv && source .venv/bin/activate",                                     # Linux, macOS
    "pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt",  # Linux, CPU
    "pip install -r requirements.txt",                                                        # GPU, macOS, Windows
    "py -m venv .venv", r".venv\Scripts\Activate.ps1",                                         # Windows
    "jupyter lab notebooks/01_fundamentals.ipynb",                                            # open the course
    "pip install -r requirements-dev.txt", "python -m pytest",                                # run the tests
])
def test_the_readme_has_the_commands_a_newcomer_types(command):
    assert command in INSTALL, f"README 'Install and run' lacks `{command}`"


def test_the_commands_come_in_the_order_they_are_run():
    order = ["cd diffcourse", "pip install -r requirements.txt", "jupyter lab notebooks/01_fundamentals.ipynb",
             "python -m pytest"]
    assert [INSTALL.index(c) for c in order] == sorted(INSTALL.index(c) for c in order)


def test_the_python_versions_it_states_are_the_packages():
    """README: "Python 3.11 to 3.14"; pyproject: ">=3.11,<3.15" (the pins' own Requires-Python and wheels set both
    ends: NumPy, SciPy & co. need 3.11, and PyTorch 2.13.0, NumPy 2.4.6 and SciPy 1.17.1 have no wheels for 3.15)."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    low, high = re.fullmatch(r">=3\.(\d+),\s*<3\.(\d+)", requires).groups()
    assert re.findall(r"Python (3\.\d+) to (3\.\d+)", README) == [(f"3.{low}", f"3.{int(high) - 1}")], requires
    assert not re.search(r"Python 3\.\d+\+|Python 3\.\d+ or newer", README), "the README states an open range"
    first = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()[0]
    assert f"Python 3.{low} to 3.{int(high) - 1}" in first, first


def test_ci_runs_the_readmes_test_command_with_the_development_requirements():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install --quiet -r requirements-dev.txt" in ci and ci.rstrip().endswith("python -m pytest")
    dev = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    assert "-r requirements.txt" in dev and any(line.startswith("pytest==") for line in dev)
    assert not any(line.startswith("pytest") for line in (ROOT / "requirements.txt").read_text().splitlines())
