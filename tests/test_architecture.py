"""Packages import in one direction, and no modules import each other in a circle.

The layers, bottom first (docs/ARCHITECTURE.md): ``patches`` (every change to a third-party
library) imports nothing of the project; the config and object storage import only it; record conversion uses the config; the module code TFX runs uses both; the server
uses record conversion; the custom components use the module code and the server (the canary);
the pipeline and its CLI use everything.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"patches": -1, "embedconfig": 0, "storage": 0, "records": 1, "models": 2, "serving": 3, "components": 4, "pipeline": 5}

pytestmark = pytest.mark.unit


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path, module_level_only: bool) -> set[str]:
    """Project modules ``path`` imports (a ``from a import b`` counts as a.b when that is a module)."""
    names: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # annotations only: not an import at run time
            if isinstance(child, ast.Import):
                names.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names.add(child.module)
                names.update(f"{child.module}.{a.name}" for a in child.names)
            if not (module_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))):
                visit(child, top)

    visit(ast.parse(path.read_text()), True)
    return {n for n in names if n.split(".")[0] in LAYERS}


def test_packages_import_only_downwards() -> None:
    wrong = []
    for module, path in _modules().items():
        package = module.split(".")[0]
        for name in _imports(path, module_level_only=False):
            target = name.split(".")[0]
            if target != package and LAYERS[target] >= LAYERS[package]:
                wrong.append(f"{module} imports {name}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_no_modules_import_each_other_in_a_circle() -> None:
    modules = _modules()
    graph = {m: {n for n in _imports(p, module_level_only=True) if n in modules and n != m} for m, p in modules.items()}
    state: dict[str, int] = {}
    cycles = []

    def walk(m: str, trail: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(" -> ".join(trail[trail.index(n):] + [n]) if n in trail else f"{m} -> {n}")
            elif n not in state:
                walk(n, trail + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m, [m])
    # a package's __init__ importing its own submodule is how packages work, not a cycle
    cycles = [c for c in cycles if not any(c.startswith(f"{p} ->") for p in LAYERS)]
    assert not cycles, "\n".join(cycles)


def test_the_architecture_map_names_every_module_and_cli_verb() -> None:
    """docs/ARCHITECTURE.md is the one-page map: every module of the packages is on it, every
    file it names exists, and its list of CLI verbs is the CLI's."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    missing = [str(p.relative_to(REPO)) for p in _modules().values() if p.name != "__init__.py" and p.name not in text]
    assert not missing, f"modules missing from docs/ARCHITECTURE.md: {missing}"
    named = set(re.findall(r"\b((?:patches|embedconfig|storage|records|models|serving|components|pipeline)/[\w/]+\.py)", text))
    assert named and not [n for n in named if not (REPO / n).exists()], "docs/ARCHITECTURE.md names files that do not exist"
    from pipeline.cli import build_parser

    parser = build_parser()
    verbs = next(a for a in parser._actions if a.dest == "verb").choices
    listed = set(re.search(r"cli\.py \(`embedpipe (.*?)`\)", text, re.S).group(1).replace("\n", " ").split("|"))
    expected = set()
    for verb, sub in verbs.items():
        nested = [a for a in sub._actions if a.dest.endswith("_verb")]
        expected |= {f"{verb} {s}" for s in nested[0].choices} if nested else {verb}
    assert {" ".join(v.split()) for v in listed} == expected


def test_results_citations_name_sections_that_exist() -> None:
    """Code, configs and docs cite bench/RESULTS.md by section heading (`bench/RESULTS.md, "Scale"`),
    and every heading cited is one the file has, word for word (a citation may wrap in a comment)."""
    headings = {re.sub(r"^#+\s*", "", line).strip() for line in (REPO / "bench" / "RESULTS.md").read_text().splitlines()
                if line.startswith("#")}
    cited, missing = 0, []
    tracked = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.yaml", "Makefile"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    for name in tracked:
        lines = (REPO / name).read_text().splitlines()
        for i, line in enumerate(lines):
            if "RESULTS.md," not in line:
                continue
            joined = line + "".join(" " + re.sub(r"^\s*(#\s?)?", "", more) for more in lines[i + 1:i + 3])
            match = re.compile(r'RESULTS\.md,\s+"([^"]+)"').match(joined, joined.index("RESULTS.md,"))
            if match:
                cited += 1
                heading = " ".join(match.group(1).split())
                if heading not in headings:
                    missing.append(f"{name}:{i + 1}: {heading}")
    assert cited >= 40 and missing == [], missing


def _third_party_patches(path: Path) -> list[str]:
    """Where ``path`` changes a library: assigns to an attribute of an imported third-party module or
    object, puts a function in place of an attribute, or sets the Keras-2 switch."""
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] not in LAYERS}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] not in LAYERS:
            imported |= {a.asname or a.name for a in node.names}
    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            where = f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(target)}"
            if isinstance(target, ast.Attribute):
                base = target.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                name = base.id if isinstance(base, ast.Name) else ""
                if (name in imported and ast.unparse(target) != "sys.argv") or (
                        isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda) and name not in ("self", "cls")):
                    found.append(where)
            elif isinstance(target, ast.Subscript) and ast.unparse(target.value) in ("os.environ", "sys.modules"):
                if "TF_USE_LEGACY_KERAS" in ast.unparse(target) or ast.unparse(target.value) == "sys.modules":
                    found.append(where)
        call = ast.unparse(node.func) if isinstance(node, ast.Call) else ""
        if call == "setattr" or (call == "os.environ.setdefault" and "TF_USE_LEGACY_KERAS" in ast.unparse(node)):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_only_the_patches_module_patches_third_party_code() -> None:
    """patches/__init__.py is the one place the project changes a library's behaviour (the Keras-2
    switch, AutoGraph's rules, tensorflow-io's exit, Beam's S3 clients, TFX's sdist, absl's logger)."""
    found = {p: _third_party_patches(p) for p in _modules().values()}
    assert [w for p, ws in found.items() if p.parent.name != "patches" for w in ws] == []
    in_patches = " ".join(w for p, ws in found.items() if p.parent.name == "patches" for w in ws)
    for patch in ("TF_USE_LEGACY_KERAS", "CONVERSION_RULES", "boto3_client.boto3", "make_beam_dependency_flags", "setLevel"):
        assert patch in in_patches, f"the scan no longer sees {patch} in patches/__init__.py: it would miss it elsewhere too"


def test_pipeline_processes_do_not_import_tfx_v1() -> None:
    """``tfx.v1`` (TFX's public API module) imports every extension, and with them
    google.cloud.aiplatform: seconds of every process's start
    (python -X importtime; bench/RESULTS.md, "Object storage and process start-up").
    Every Kubeflow task, every ``embedpipe run`` and every Beam worker that unpickles the custom
    executors starts with the project's modules, so they import TFX's modules directly."""
    modules = ["pipeline.cli", "pipeline.local_runner", "pipeline.kfp_entrypoint", "pipeline.kubeflow_runner",
               "models.trainer", "models.preprocessing", *[m for m in _modules() if m.startswith("components.")]]
    probe = (f"import sys, importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
             "print(sorted(m for m in sys.modules if m == 'tfx.v1' or m.startswith('google.cloud.aiplatform'))[:3])")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
