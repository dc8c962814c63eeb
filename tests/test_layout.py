"""The package's import contract: data flows one way (config -> generate -> execute -> count -> forecast -> report),
so no module imports from a layer above its own, and no import circle exists, counting imports inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module may import from its own layer or any layer below it; README.md, "Layout", says the same.
LAYERS = [
    ["pipeline.errors", "pipeline.records", "pipeline.progress", "pipeline.arguments",
     "pipeline.passk", "pipeline.registry", "pipeline.lock"],       # plumbing with no domain knowledge
    ["pipeline.config", "pipeline.problems", "pipeline.rundir"],        # what a family and a run directory are
    ["pipeline.reference", "pipeline.generate"],                        # models and their samples
    ["pipeline.execute", "pipeline.counts", "pipeline.samples"],                            # verdicts and pass counts
    ["pipeline.forecast"],                                              # laws, fits, forecasts, the loss law
    ["pipeline.sampling"],                                              # adaptive rounds and PassUntil
    ["pipeline.report"],                                                # the document read from stored results
    ["pipeline.slurm", "pipeline.run", "pipeline.summary"],                                 # orchestration of every stage
    ["pipeline.cli"],                                                   # the command line
]
SANDBOX_MAY_IMPORT = {"pipeline", "pipeline.errors", "pipeline.registry"}   # the sandbox is a library below the pipeline


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """Every pipeline/sandbox module this file imports, at any depth (function bodies included).

    ``from package import module`` is an edge to the module alone: a package's ``__init__`` that imports
    its children lazily is not a circle.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            children = {f"{base}.{a.name}" for a in node.names} & modules
            found |= children if len(children) == len(node.names) else children | {base}
    return {m for m in found if m.split(".")[0] in ("pipeline", "sandbox")}


def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: {m for m in imports_of(path, name, set(modules)) if m in modules and m != name}
            for name, path in modules.items()}


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for top in ("pipeline", "sandbox") for p in sorted((ROOT / top).rglob("*.py"))}


def layer_of(name: str) -> int | None:
    best = None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if name == prefix or name.startswith(prefix + "."):
                best = i
    return best


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in edges.items():
        if src.startswith("sandbox"):
            bad += [f"{src} -> {t}" for t in targets if t.startswith("pipeline") and t not in SANDBOX_MAY_IMPORT]
            continue
        if src == "pipeline":
            continue
        for t in targets:
            if t.startswith("pipeline") and t != "pipeline" and layer_of(t) > layer_of(src):
                bad.append(f"{src} (layer {layer_of(src)}) -> {t} (layer {layer_of(t)})")
    return sorted(bad)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_every_pipeline_module_has_a_layer():
    missing = [n for n in all_modules() if n.startswith("pipeline.") and layer_of(n) is None]
    assert not missing, f"add these modules to a layer in LAYERS: {missing}"


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports(graph(all_modules())) == []


def test_no_import_circles():
    assert cycles(graph(all_modules())) == []


@pytest.mark.parametrize("edges, expected", [
    ({"pipeline.forecast.fit": {"pipeline.report.stage"}, "pipeline.report.stage": set()},
     ["pipeline.forecast.fit (layer 4) -> pipeline.report.stage (layer 6)"]),
    ({"sandbox.pool": {"pipeline.run"}, "pipeline.run": set()}, ["sandbox.pool -> pipeline.run"]),
])
def test_the_contract_catches_an_upward_import(edges, expected):
    assert upward_imports(edges) == expected


def test_the_contract_catches_a_circle():
    assert cycles({"pipeline.a": {"pipeline.b"}, "pipeline.b": {"pipeline.c"}, "pipeline.c": {"pipeline.a"}}) == \
        [["pipeline.a", "pipeline.b", "pipeline.c"]]


def run_dir_names_spelled(path: Path) -> list[str]:
    """Where a module spells a run directory's file or folder name (pipeline.rundir.RunDir owns them): a string
    equal to a file name or ending in '/<file name>', or ``path / "<folder>"``. Docstrings and the ``help=`` and
    ``description=`` texts of the command line may name files; code that builds a path may not."""
    from pipeline.rundir import RunDir

    tree = ast.parse(path.read_text(), str(path))
    prose = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            prose.add(id(body[0].value))
        if isinstance(node, ast.keyword) and node.arg in ("help", "description"):
            prose |= {id(n) for n in ast.walk(node.value)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            if any(node.value == name or node.value.endswith("/" + name) for name in RunDir.FILES):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
        elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant)
              and node.right.value in RunDir.FOLDERS + RunDir.FILES):
            found.append(f"{path.name}:{node.lineno}: / {node.right.value!r}")
    return found


def test_only_the_run_directory_module_spells_its_file_names():
    spelled = [f"{name}: {hit}" for name, path in all_modules().items() if not name.startswith("pipeline.rundir")
               for hit in run_dir_names_spelled(path)]
    assert spelled == []


def test_the_file_name_check_finds_a_spelled_name(tmp_path):
    module = tmp_path / "spelled.py"
    module.write_text('"""Reads forecast.json."""\nfrom pathlib import Path\n\n\ndef f(run):\n'
                      '    return run / "verdicts", Path(run) / "forecast.json", f"{run}/plan.json"\n')
    assert sorted(hit.split(": ", 1)[1] for hit in run_dir_names_spelled(module)) == \
        ["'/plan.json'", "'forecast.json'", "/ 'forecast.json'", "/ 'verdicts'"]
