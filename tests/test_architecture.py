"""The layout the package promises (docs/architecture.md): no import cycles, no import from a lower layer to a
higher one, modules and classes of a readable size, and the package free of source-tree tools.

Imports are read from the source (ast), including those inside functions: an import moved into a function to
dodge a cycle is still a cycle. Imports under `if TYPE_CHECKING:` are left out: they never run, and name the
type of a parameter (the Trainer that loop.run drives) for the reader.
"""

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "charrnn"

# Lowest first. A module may import from its own layer and the layers below it, never from a layer above.
# Longest prefix wins, so a module can sit below the rest of its folder (hub.reach, under the data readers).
LAYERS = [
    ("foundation", ["charrnn", "charrnn.errors", "charrnn.paths", "charrnn.cells", "charrnn.config"]),
    ("core", ["charrnn.tokenizer", "charrnn.model", "charrnn.device", "charrnn.hub.reach"]),
    ("storage", ["charrnn.checkpoint", "charrnn.data"]),
    ("computation", ["charrnn.evaluate", "charrnn.sampling", "charrnn.analysis", "charrnn.hub.resolve",
                     "charrnn.hub.card", "charrnn.export"]),
    ("training", ["charrnn.train"]),
    ("sharing", ["charrnn.hub.push", "charrnn.hub"]),
    ("service", ["charrnn.service", "charrnn.bench"]),
    ("interface", ["charrnn.cli", "charrnn.app"]),
]
ENTRY_POINTS = "__main__"  # `python -m charrnn.<x>` modules call the command line: they sit with the interfaces
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 200
DATA_TABLES = {"charrnn/app/texts.py"}  # the page's words: long, but one table of text


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The charrnn modules `name` imports anywhere in its source: `from a.b import c` counts as a.b.c when c is a
    module, else as a.b."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING" for inner in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target in known and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def layer(name: str) -> int:
    if name.endswith(ENTRY_POINTS):
        return len(LAYERS) - 1
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    assert best is not None, f"{name} is in no layer: add it to LAYERS and to docs/architecture.md"
    return best


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done, path, on_path = set(), [], set()

    def visit(node):
        path.append(node)
        on_path.add(node)
        for target in sorted(graph[node]):
            if target in on_path:
                return path[path.index(target):] + [target]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        on_path.discard(path.pop())
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_the_package_imports_form_no_cycle():
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from charrnn.sampling import generate\n")
    assert imported("charrnn.m", source, modules()) == {"charrnn.sampling.generate"}


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [f"{name} ({LAYERS[layer(name)][0]}) imports {target} ({LAYERS[layer(target)][0]})"
              for name, targets in import_graph().items() for target in sorted(targets) if layer(target) > layer(name)]
    assert upward == []


def test_sampling_never_imports_the_service_or_the_app_and_the_model_never_the_hub():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("charrnn.sampling"):
            assert not [t for t in targets if t.startswith(("charrnn.service", "charrnn.app", "charrnn.cli"))], name
        if name.startswith(("charrnn.model", "charrnn.checkpoint")):
            assert not [t for t in targets if t.startswith("charrnn.hub")], name


def test_modules_and_classes_stay_small_enough_to_read():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in DATA_TABLES:
            continue
        source = path.read_text(encoding="utf-8")
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{relative}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_long.append(f"{relative}: class {node.name}, {node.end_lineno - node.lineno + 1} lines")
    assert too_long == []


def test_every_command_line_main_lives_in_the_cli_folder():
    """Library modules have no `main()`: commands live in charrnn/cli (and the app's launch in charrnn/app) and
    call the library."""
    mains = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name in ("cli", "app") or path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            mains.append(path.relative_to(ROOT).as_posix())
    assert mains == []


def test_pip_install_ships_the_package_and_no_source_tree_tool():
    import tomllib

    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert found["include"] == ["charrnn*"]
    assert (ROOT / "tools" / "stress").is_dir() and not (PACKAGE / "stress").exists()


def test_knowledge_of_the_cells_has_one_home():
    """No module but cells.py keeps its own table keyed by cell names (a dict, or a tuple of several names).
    Tables of the shipped models' names (rnn, gru, lstm, lstm_best: colours, the Compare trio) are about models,
    not cells: they hold "rnn", which no cell is called."""
    from charrnn.cells import CELLS

    tables = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "cells.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            keys = node.keys if isinstance(node, ast.Dict) else node.elts if isinstance(node, ast.Tuple) else []
            names = {key.value for key in keys if isinstance(key, ast.Constant) and key.value in CELLS}
            model_names = any(isinstance(key, ast.Constant) and key.value == "rnn" for key in keys)
            if len(names) >= 2 and not model_names:
                tables.append(f"{path.relative_to(ROOT).as_posix()}:{node.lineno}")
    assert tables == []


def test_each_cells_row_matches_what_torch_and_the_kernels_compute():
    import torch

    from charrnn.cells import CELL_TABLE
    from charrnn.config import ModelConfig
    from charrnn.model import CharRNN

    assert len({cell.kernel_code for cell in CELL_TABLE.values()}) == len(CELL_TABLE)
    for name, cell in CELL_TABLE.items():
        model = CharRNN(ModelConfig(vocab_size=5, cell=name, hidden_size=8, embedding_size=4, num_layers=1))
        w_hh = next(p for n, p in model.named_parameters() if "weight_hh" in n)
        assert w_hh.shape[0] == cell.weight_blocks * 8, name
        assert len(cell.blocks) in (0, cell.weight_blocks) and set(cell.gates) <= set(cell.blocks)
        assert (cell.keep_gate in cell.gates) if cell.gates else cell.keep_gate is None
        hidden = model.init_hidden(1, torch.device("cpu")) if hasattr(model, "init_hidden") else None
        if hidden is not None:
            assert isinstance(hidden, tuple) == cell.has_cell_state, name
