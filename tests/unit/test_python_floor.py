"""What runs on the managed host (modules, module_utils) reads and runs on Python 3.8 (docs/testing.md).

``ast.parse(feature_version=(3, 8))`` catches syntax; the walker catches what parses on 3.8 but fails when it
runs there. Annotations are skipped: every module_utils file has ``from __future__ import annotations``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST_FILES = sorted([*ROOT.glob("plugins/modules/*.py"), *ROOT.glob("plugins/module_utils/**/*.py")])
BUILTIN_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}
ABC_GENERICS = {"Callable", "Iterable", "Iterator", "Mapping", "MutableMapping", "Sequence", "Generator"}
NEWER_NAMES = {"pairwise": "3.10", "cache": "3.9", "lcm": "3.9", "tomllib": "3.11", "zoneinfo": "3.9"}
NEWER_METHODS = {"removeprefix": "3.9", "removesuffix": "3.9", "is_relative_to": "3.9", "with_stem": "3.9"}


def _annotation_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            annotations = [a.annotation for a in every if a is not None] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            if annotation is not None:
                skip.update(id(n) for n in ast.walk(annotation))
    return skip


def _is_type(node: ast.AST) -> bool:
    return (
        (isinstance(node, ast.Name) and (node.id in BUILTIN_GENERICS | ABC_GENERICS | {"int", "str", "bytes"}))
        or (isinstance(node, ast.Constant) and node.value is None)
        or (isinstance(node, ast.Subscript) and _is_type(node.value))
    )


def _is_dict(node: ast.AST) -> bool:
    return isinstance(node, (ast.Dict, ast.DictComp)) or (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict"
    )


def problems(source: str, name: str = "<source>") -> list[str]:
    """What of ``source`` Python 3.8 cannot read or run, as ``line: what``."""
    try:
        tree = ast.parse(source, name, feature_version=(3, 8))
    except SyntaxError as exc:
        return [f"{exc.lineno}: syntax of a newer Python: {exc.msg}"]
    annotations = _annotation_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in annotations:
            continue
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "zip" and any(k.arg == "strict" for k in node.keywords):
                found.append(f"{line}: zip(strict=) is 3.10: use _compat.zip_strict")
            if isinstance(func, ast.Attribute) and func.attr in NEWER_METHODS:
                found.append(f"{line}: .{func.attr}() is {NEWER_METHODS[func.attr]}")
            if isinstance(func, ast.Name) and func.id == "dataclass":
                for keyword in node.keywords:
                    if keyword.arg in ("slots", "kw_only", "match_args"):
                        found.append(f"{line}: dataclass({keyword.arg}=) is 3.10")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            if node.value.id in BUILTIN_GENERICS | ABC_GENERICS:
                found.append(f"{line}: {node.value.id}[...] evaluated at run time is 3.9")
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.BitOr):
            left = node.left if isinstance(node, ast.BinOp) else node.target
            if _is_type(left) or _is_type(node.right):
                found.append(f"{line}: a type union X | Y evaluated at run time is 3.10")
            if _is_dict(left) or _is_dict(node.right):
                found.append(f"{line}: dict | dict is 3.9: use {{**a, **b}}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("itertools", "functools", "math", "tomllib"):
            found += [f"{line}: {a.name} is {NEWER_NAMES[a.name]}" for a in node.names if a.name in NEWER_NAMES]
        elif isinstance(node, ast.Attribute) and node.attr in NEWER_NAMES and isinstance(node.value, ast.Name):
            if node.value.id in ("itertools", "functools", "math"):
                found.append(f"{line}: {node.value.id}.{node.attr} is {NEWER_NAMES[node.attr]}")
        elif isinstance(node, ast.Import):
            found += [f"{line}: {a.name} is {NEWER_NAMES[a.name]}" for a in node.names if a.name in NEWER_NAMES]
    return found


@pytest.mark.parametrize("path", HOST_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_managed_host_file_reads_and_runs_on_python_3_8(path):
    source = path.read_text()
    assert problems(source, str(path)) == []
    if "module_utils" in path.parts and path.name not in ("__init__.py", "python_floor.py"):
        assert "from __future__ import annotations" in source  # annotations stay unevaluated on 3.8


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("match x:\n    case 1:\n        pass\n", "syntax"),
        ("with (open(a) as f, open(b) as g):\n    pass\n", "syntax"),
        ("pairs = zip(a, b, strict=True)\n", "zip(strict=)"),
        ("name = text.removeprefix('x')\n", "removeprefix"),
        ("ok = isinstance(v, int | str)\n", "type union"),
        ("Rows = dict[str, int]\n", "dict[...]"),
        ("merged = {'a': 1} | other\n", "dict | dict"),
        ("from itertools import pairwise\n", "pairwise"),
        ("import functools\n@functools.cache\ndef f(): pass\n", "functools.cache"),
        ("from dataclasses import dataclass\n@dataclass(slots=True)\nclass A: pass\n", "slots"),
    ],
)
def test_the_check_finds_what_python_3_8_lacks(source, what):
    assert any(what in problem for problem in problems(source)), problems(source)


def test_annotations_and_ordinary_code_pass():
    source = "def f(a: list[str] | None = None) -> dict[str, int]:\n    x: tuple[int, ...] = ()\n    return {**a}\n"
    assert problems(source) == []


def test_the_floor_module_refuses_an_older_python_with_json():
    floor = ROOT / "plugins/module_utils/python_floor.py"
    script = f"import sys; sys.version_info = (3, 7, 16, 'final', 0); exec(open({str(floor)!r}).read())"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert '"failed": true' in done.stdout and "ansible_python_interpreter" in done.stdout and "3.8" in done.stdout
    assert problems(floor.read_text()) == []
