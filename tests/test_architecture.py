"""The package's shape (docs/ARCHITECTURE.md), checked: no import circle among stance modules,
short modules and functions, and no model-kind dispatch by name outside stance/kinds/.

Each rule is a small function run on the package and, first, on a made-up case that breaks
it, so a rule that can no longer fail is noticed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "stance"
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
# `kind == ...`, `kind != ...`, or a kind name compared directly: the registry's job.
KIND_DISPATCH = re.compile(
    r"""\bkind\s*(==|!=)|(==|!=)\s*["'](sentence|cross-encoder)["']"""
    r"""|["'](sentence|cross-encoder)["']\s*(==|!=)"""
)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:`: annotations only, never run."""
    return {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The stance modules `source` imports when it runs (at any depth: lazy ones too)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(source)
    skip = _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` mod.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:  # stance.x.y.name -> stance.x.y
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def import_graph(root: Path = ROOT, package: Path = PACKAGE) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in package.rglob("*.py")}
    known = set(files)
    return {
        name: imports_of(p.read_text(encoding="utf-8"), name, p.name == "__init__.py", known)
        for name, p in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > limit
    ]


def kind_dispatch(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if KIND_DISPATCH.search(line)]


# ---------------------------------------------------------------- the rules can fail


def test_rules_catch_what_they_forbid(tmp_path):
    pkg = tmp_path / "stance"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    (pkg / "c.py").write_text("from . import a\nif TYPE_CHECKING:\n    from .sub import b\n")
    graph = import_graph(tmp_path, pkg)
    assert graph["stance.c"] == {"stance.a"}
    assert cycles(graph) == [["stance.a", "stance.sub.b"]]
    body = "\n".join(f"    x = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}\n") == [("f", MAX_FUNCTION_LINES + 1)]
    assert not long_functions(f"def f():\n{body[: body.rindex(chr(10))]}\n")
    assert kind_dispatch('if cfg.model.kind == "sentence":\n    pass') != []
    assert kind_dispatch('pairs = config.get("stance_kind") != "sentence"') != []
    assert kind_dispatch("kind = get_kind(cfg.model.kind)") == []


# ---------------------------------------------------------------- the package keeps them


def test_no_import_circle():
    assert cycles(import_graph()) == []


def test_modules_are_short():
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_functions_are_short():
    long = {
        str(p.relative_to(ROOT)): found
        for p in PACKAGE.rglob("*.py")
        if (found := long_functions(p.read_text(encoding="utf-8")))
    }
    assert long == {}


def test_kinds_are_dispatched_by_the_registry_only():
    kinds = PACKAGE / "kinds"
    found = {
        str(p.relative_to(ROOT)): lines
        for p in PACKAGE.rglob("*.py")
        if kinds not in p.parents and (lines := kind_dispatch(p.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_benchmark_files_stay_readable():
    """benchmarks/ is split by concern too: no file over 400 lines."""
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "benchmarks").rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}
