"""The documentation tells the truth: README examples run, every command it shows exists
with the options it uses, and the library's docstring examples pass."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import shlex
from pathlib import Path

import pytest

import saddlescape
from saddlescape.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


DOCS = sorted((ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("page", [p for p in DOCS if ">>> " in p.read_text()], ids=lambda p: p.name)
def test_docs_python_examples(page):
    result = doctest.testfile(str(page), module_relative=False, optionflags=FLAGS)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} example(s) failed in docs/{page.name}"


def test_readme_python_examples():
    result = doctest.testfile(str(README), module_relative=False, optionflags=FLAGS)
    assert result.attempted > 5
    assert result.failed == 0


def _readme_commands(pages: tuple[Path, ...] = (README,)) -> list[list[str]]:
    text = "\n".join(page.read_text() for page in pages)
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("saddlescape "):
                commands.append(shlex.split(line)[1:])
    return commands


def test_readme_quick_start_is_two_make_targets():
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1].split("##", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, flags=re.S).group(1)
    lines = [ln.split("#")[0].strip() for ln in block.splitlines() if ln.strip()]
    assert lines == ["make reproduce", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^reproduce:", makefile, flags=re.M)
    assert re.search(r"^test:", makefile, flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("argv", _readme_commands((README, *DOCS)), ids=lambda a: " ".join(a[:2]))
def test_readme_command_exists_with_its_options(argv, capsys):
    assert main([argv[0], "--help"]) == 0
    help_text = capsys.readouterr().out
    for token in argv[1:]:
        if token.startswith("--"):
            assert token.split("=")[0] in help_text, f"{argv[0]} has no option {token}"


# Cheap README commands run for real (the others are exercised by their own tests).
CHEAP = [
    ["problems"],
    ["problems", "octopus", "--dim", "4"],
    ["problems", "quadratic-saddle", "--dim", "5", "--set", "n_negative=2"],
    ["certify", "himmelblau", "--at-critical", "4"],
    ["certify", "lee-2d", "--at", "0,1", "--tau", "0.1"],
    ["experiments", "--verbose"],
]


@pytest.mark.parametrize("argv", CHEAP, ids=" ".join)
def test_cheap_readme_commands_run(argv):
    assert argv in _readme_commands()
    assert main(argv) == 0


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(saddlescape.__path__, prefix="saddlescape."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in finder.find(module, name):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} docstring example(s) failed in {name}"


def test_readme_pandas_example_runs(tmp_path, monkeypatch):
    from saddlescape.runner import run_sweep

    (code,) = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
               if "load_runs" in b]  # fmt: skip
    grid = {"optimizer": ["pgd", "noisy"], "dim": [10, 20], "seed": [0]}
    run_sweep("dimension", grid=grid, store=tmp_path / "results", progress=False)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(code, namespace)  # the README's own example
    df = namespace["df"]
    assert len(df) == 4 and {"optimizer", "dim", "iterations", "seed"} <= set(df.columns)
