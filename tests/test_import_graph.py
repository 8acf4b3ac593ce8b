"""The package's imports point down its layers, and the library never imports the CLI.

Every ``import`` of a ``prodfusion`` module, at module level or inside a function, is read
from the source (AST) and checked against the layer order of docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import prodfusion

ROOT = Path(prodfusion.__file__).resolve().parent

#: Lower number = lower layer; a module may import its own layer and those below.
#: fusion/, index/ and engine/ are one layer ("search"): the fused indexes (index/fused/)
#: take their scores from fusion/, the fusions use the leaf top-k kernel (index/topk.py), and
#: sharded indexes (index/sharded.py) run their tasks on engine/'s executors.
LAYERS = {
    "prodfusion": 0,  # the root: __version__ (its public names are imported lazily)
    "prodfusion.errors": 0, "prodfusion._checks": 0, "prodfusion.progress": 0,
    "prodfusion._outputs": 0, "prodfusion._wording": 0,
    "prodfusion.data": 1, "prodfusion.sources": 1,
    "prodfusion.encoders": 2,
    "prodfusion.index": 3, "prodfusion.fusion": 3, "prodfusion.engine": 3,
    "prodfusion.model_folder": 4, "prodfusion.variants": 4, "prodfusion.model_updates": 4,
    "prodfusion.model_state": 4, "prodfusion.model_search": 4, "prodfusion.querying": 4,
    "prodfusion.recommender": 5,
    "prodfusion.evaluation": 6, "prodfusion.training": 6, "prodfusion.batch": 6,
    "prodfusion.demo": 6, "prodfusion.pipeline": 6,
    "prodfusion.service": 7,
    "prodfusion.cli": 8,
}
#: Upward imports allowed on purpose, each made inside the function that needs it.
ALLOWED = {
    # Recommender.tune() is a convenience over the tuning protocol of evaluation/.
    ("prodfusion.recommender", "prodfusion.evaluation.tuning"),
    # ... and over its learned form (tune(learner="gbdt")).
    ("prodfusion.recommender", "prodfusion.evaluation.tuning_learned"),
}


def _group(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _imports() -> list[tuple[str, str, int]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        mod = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            out += [(mod, n, node.lineno) for n in names if n.split(".")[0] == "prodfusion"]
    return out


IMPORTS = _imports()


def test_every_module_has_a_layer():
    groups = {_group(m) for m, _, _ in IMPORTS} | {_group(t) for _, t, _ in IMPORTS}
    assert groups <= set(LAYERS), sorted(groups - set(LAYERS))


def test_imports_point_down():
    # The root package is the lazy public API (prodfusion/__init__.py): as an importer it
    # sits on top of everything; as an import target it only gives __version__.
    up = [f"{m}:{line} imports {t}" for m, t, line in IMPORTS if m != "prodfusion"
          and LAYERS[_group(t)] > LAYERS[_group(m)] and (m, t) not in ALLOWED]
    assert not up, "\n".join(up)


def test_the_library_never_imports_the_cli():
    bad = [f"{m}:{line}" for m, t, line in IMPORTS
           if _group(t) == "prodfusion.cli" and _group(m) != "prodfusion.cli"]
    assert not bad, bad


def test_the_scan_sees_imports_inside_functions():
    # create_app() imports its routes, and Recommender.tune() the tuning protocol, inside
    # the functions; a scan of module-level imports only would miss both.
    pairs = {(m, t) for m, t, _ in IMPORTS}
    assert ("prodfusion.service.app", "prodfusion.service.routes") in pairs
    assert ALLOWED <= pairs


def test_every_name_imported_from_the_package_exists():
    """Moves keep their old import paths: every ``from prodfusion.x import name`` in the
    package, the tests and the benchmarks names something that exists (a benchmark is
    otherwise only found broken when someone runs it)."""
    import importlib

    repo = ROOT.parent
    wanted = set()
    for folder in ("prodfusion", "tests", "benchmarks"):
        for path in sorted((repo / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                        and node.module.split(".")[0] == "prodfusion":
                    rel = path.relative_to(repo)
                    wanted |= {(node.module, a.name, f"{rel}:{node.lineno}") for a in node.names
                               if a.name != "*"}
    missing = []
    for module, name, where in sorted(wanted):
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:  # an optional dependency that is not installed
            if (exc.name or "").split(".")[0] == "prodfusion":
                missing.append(f"{where}: {module} ({exc})")
            continue
        if not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{where}: {module} has no {name!r}")
    assert not missing, "\n".join(missing)
