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


def test_the_python_version_it_states_is_the_packages():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    stated = re.findall(r"Python (3\.\d+) or newer", README)
    assert stated and set(stated) == {requires.removeprefix(">=")}, (stated, requires)


def test_ci_runs_the_readmes_test_command_with_the_development_requirements():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install --quiet -r requirements-dev.txt" in ci and ci.rstrip().endswith("python -m pytest")
    dev = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    assert "-r requirements.txt" in dev and any(line.startswith("pytest==") for line in dev)
    assert not any(line.startswith("pytest") for line in (ROOT / "requirements.txt").read_text().splitlines())
