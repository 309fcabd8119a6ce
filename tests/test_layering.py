"""The pipeline's import rule, enforced: a stage imports only the stages below it, nothing imports build/ but
tools/ and the public API, no two packages import each other, and nothing imports in a cycle.

    errors, version, host < onnx < ops < passes < precision < plan < runtime < build < zoo < tools

(the package root, greenrt/__init__.py, is the public API and may import any stage.) The check reads every
module's imports with ast, including the ones inside functions: a lazy import is still a dependency.
"""

import ast
from pathlib import Path

import greenrt

PACKAGE = Path(greenrt.__file__).parent
ORDER = ["errors", "version", "host", "onnx", "ops", "passes", "precision", "plan", "runtime", "build", "zoo", "tools"]
# modules at the package root that are stages of their own (one file)
ROOT_MODULES = {"errors", "version", "host"}


def _stage(module: str) -> str | None:
    """'greenrt.plan.compile' -> 'plan'; the package root and __main__ -> None."""
    parts = module.split(".")
    if parts[0] != "greenrt" or len(parts) < 2 or parts[1] in ("__init__", "__main__"):
        return None
    return parts[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the greenrt modules ``path`` imports (relative imports resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "greenrt"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "greenrt":
                continue
            if node.module is None or target == "greenrt":  # from . import x / from greenrt import x
                out |= {f"{target}.{a.name}" for a in node.names}
            else:
                out.add(target)
    return out


def _edges() -> dict[str, set[str]]:
    """stage -> stages it imports (the package root excluded)."""
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        src = _stage(_module_name(path))
        if src is None:
            continue
        for target in _imports(path):
            dst = _stage(target)
            if dst is not None and dst != src:
                edges.setdefault(src, set()).add(dst)
    return edges


def test_every_stage_is_in_the_order():
    stages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    stages |= {p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert stages == set(ORDER), f"add new stages to ORDER in {__file__}: {sorted(stages ^ set(ORDER))}"


def test_stages_import_only_stages_below():
    bad = []
    for src, targets in _edges().items():
        for dst in targets:
            if ORDER.index(dst) > ORDER.index(src):
                bad.append(f"{src}/ imports {dst}/")
    assert not bad, "lower stages reach up: " + "; ".join(sorted(bad))


def test_only_tools_and_the_public_api_import_build():
    importers = sorted(src for src, targets in _edges().items() if "build" in targets and src != "tools")
    assert importers == [], f"{importers} import build/"


def test_no_module_level_cycles():
    graph: dict[str, set[str]] = {}
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    for name, path in modules.items():
        graph[name] = {t for t in _imports(path) if t in modules and t != name}
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in graph.get(node, ()):
            # a package's __init__ re-exporting its own modules is not a cycle between stages
            if node.startswith(nxt + ".") or nxt == "greenrt":
                continue
            visit(nxt)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_the_rule_catches_a_violation(tmp_path):
    """The checker itself fails on an upward import (a test that cannot fail proves nothing)."""
    path = PACKAGE / "plan" / "_layering_probe.py"
    path.write_text("from ..build import BuildConfig\n")
    try:
        assert "build" in _edges()["plan"]
    finally:
        path.unlink()


def test_the_version_is_written_once():
    hits = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "__version__ = " in p.read_text()]
    assert hits == ["version.py"]
