"""An import-linter contract type for packages installed into our namespace from elsewhere.

`orchestrator.steps` and `orchestrator.pipelines` live in the `steps/` and `pipelines/`
folders and are mapped into the `orchestrator` namespace at install time, so the import
graph built from the `orchestrator/` folder does not hold them, and a plain `forbidden`
contract cannot name them. `forbidden_mapped` is that `forbidden` contract, after it adds
to the graph every import of such a package found in the sources (also those inside
functions, and relative ones). Configured in pyproject.toml (`[tool.importlinter]`).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

from importlinter.contracts.forbidden import ForbiddenContract


def _module_name(root: Path, path: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int]]:
    """`(imported module, line)` for every import in a module's tree, relative ones resolved."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            out.append((base, node.lineno))
            out.extend((f"{base}.{a.name}", node.lineno) for a in node.names)
    return out


class ForbiddenMappedContract(ForbiddenContract):
    type_name = "forbidden_mapped"

    def check(self, graph: Any, verbose: bool) -> Any:
        forbidden = [m.expression for m in self.forbidden_modules]  # type: ignore[attr-defined]
        for package in sorted({name.split(".")[0] for name in forbidden}):
            spec = importlib.util.find_spec(package)
            assert spec is not None and spec.submodule_search_locations is not None
            root = Path(next(iter(spec.submodule_search_locations)))
            for path in sorted(root.rglob("*.py")):
                module = _module_name(root, path, package)
                tree = ast.parse(path.read_text(), str(path))
                for imported, line in _imports(tree, module, path.name == "__init__.py"):
                    hit = next((f for f in forbidden if (imported + ".").startswith(f + ".")), None)
                    if hit is not None and module in graph.modules:
                        graph.add_module(hit)
                        graph.add_import(
                            importer=module, imported=hit, line_number=line, line_contents=""
                        )
        for name in forbidden:
            if name not in graph.modules:
                graph.add_module(name)
        return super().check(graph, verbose)
