"""The walkthrough cannot go stale: every code and test reference in it resolves, every figure it
shows exists, and its worked example is what the code computes."""

from __future__ import annotations

import ast
import os
import re
import subprocess

import pytest

from dreamer.figures import worked_example_returns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _text(name: str) -> str:
    with open(os.path.join(DOCS, name)) as f:
        return f.read()


def _names(path: str) -> set[str]:
    """Top-level functions and classes, and Class.method, defined in a Python file."""
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}.{sub.name}")
    return names


@pytest.mark.parametrize("doc", ["walkthrough.md", "experiments.md"])
def test_every_code_reference_resolves(doc):
    text = _text(doc)
    refs = set(re.findall(r"([\w/]+\.py):(?!:)([A-Za-z_][\w.]*)", text))
    tests = set(re.findall(r"(tests/[\w/]+\.py)::(\w+)", text))
    assert refs or doc != "walkthrough.md"
    missing = [f"{p}:{n}" for p, n in refs if not p.startswith("tests/") and n not in _names(p)]
    missing += [f"{p}::{n}" for p, n in tests if n not in _names(p)]
    assert not missing, missing


def test_walkthrough_figures_exist_and_there_are_at_least_five():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", _text("walkthrough.md"))
    assert len(set(images)) >= 5
    missing = [p for p in images if not os.path.exists(os.path.join(DOCS, p))]
    assert not missing, missing


def test_worked_lambda_return_example():
    # the numbers printed in the walkthrough's table, computed by hand there
    assert worked_example_returns() == pytest.approx([3.0148, 2.0219, 1.0, 0.0], abs=1e-4)
    r1 = 1 + 0.997 * (0.05 * 1.5 + 0.95 * 1.0)
    r0 = 1 + 0.997 * (0.05 * 2.0 + 0.95 * r1)
    assert worked_example_returns()[:2] == pytest.approx([r0, r1], abs=1e-6)


def test_no_file_cites_a_file_outside_the_repository():
    outside = ["../" + "shared", "ALGORITHM" + ".md", "STYLE" + ".md"]
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    cites = []
    for name in files:
        if name.endswith((".png", ".gif", ".jsonl")) or name.startswith(".ci/"):
            continue
        with open(os.path.join(ROOT, name), errors="ignore") as f:
            text = f.read()
        cites += [f"{name}: {o}" for o in outside if o in text]
    assert not cites, cites
