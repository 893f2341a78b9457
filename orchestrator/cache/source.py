"""Source and bytecode of user code, as the fingerprint reads them.

* `parse`: the hash of a function's, code object's or class's source as an AST dump
  without docstrings (and, for a function, without the decorators of its `def`), and
  its calls that look names up at run time (`dynamic_calls`); None when there is no
  source (code made by `exec`). Each source file is parsed once per process
  (`_FileIndex`) and its definitions found by line and qualified name; what the index
  does not hold (a lambda, a file `linecache` reloaded since) is read through `inspect`
  as before. Both ways give the same hash;
* definitions already read are kept on disk too (`use_definition_cache(folder)`, which
  a run sets to `$ORCH_HOME/cache/definitions`): one small JSON file per source file,
  named by the hash of the Python version and the file's exact text, so an edited
  file (or another Python) is never served an old answer, and a new process that
  fingerprints unchanged code parses nothing. A record that cannot be read is read
  from the source instead and written again;
* `code_digest`: bytecode, constants and names, for code without source;
* `code_names`: every name a code object and its nested code read;
* `imports`: the `import` statements inside a function body, from its bytecode.
"""

from __future__ import annotations

import ast
import copy
import dis
import inspect
import json
import linecache
import marshal
import os
import sys
import tempfile
import textwrap
import types
from pathlib import Path
from typing import Any

from orchestrator.cache.hashing import hash_text

# (callee, "literal" | "computed", a, b): `getattr(x, "name")` is ("getattr", "literal",
# "name", ""); `getattr(x, name)` is ("getattr", "computed", "x" (the first argument's name
# when it is a bare name, else ""), its source text); `eval(...)`, `exec(...)`,
# `__import__(...)` and `import_module(...)` of a computed value are (callee, "computed",
# "", "")
Calls = tuple[tuple[str, str, str, str], ...]
DYNAMIC_CALLS = frozenset({"eval", "exec", "__import__", "import_module"})
_FORMAT = "1"  # of the records on disk: a change of what they hold changes it


def strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


_Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


_Block = ast.stmt | ast.excepthandler | ast.match_case  # what may hold a definition


class _FileIndex:
    """One source file's definitions: functions by first line, classes by qualified name.

    Only statements are searched (a `def` or `class` is never inside an expression). A
    definition's docstrings are stripped when it is first asked for (stripping is
    idempotent, so a nested definition asked for later sees the same tree); decorators
    are never touched (a hash without them is made from a shallow copy), so one tree
    serves every request.
    """

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.text = "".join(lines)
        self.digest = hash_text(f"{_FORMAT}\0{sys.version}\0{self.text}")
        self.record: dict[str, list[Any]] = _definitions.load(self.digest)
        self._functions: dict[tuple[int, str], ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self._classes: dict[str, ast.ClassDef] = {}
        self._parsed = False

    def _parse(self) -> None:
        if not self._parsed:
            self._parsed = True  # once: a file that does not parse is read through inspect
            self._index(ast.parse(self.text), "")

    def function(self, line: int, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        self._parse()
        return self._functions.get((line, name))

    def cls(self, qualname: str) -> ast.ClassDef | None:
        self._parse()
        return self._classes.get(qualname)

    def remember(self, key: str, digest: str, calls: Calls) -> None:
        self.record[key] = [digest, [list(c) for c in calls]]
        _definitions.changed(self)

    def _index(self, node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, _Block):
                continue
            if not isinstance(child, _Definition):
                self._index(child, prefix)
                continue
            qual = f"{prefix}{child.name}"
            if isinstance(child, ast.ClassDef):
                self._classes.setdefault(qual, child)
            else:
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                self._functions.setdefault((first, child.name), child)
                qual += ".<locals>"
            self._index(child, qual + ".")


_files: dict[str, _FileIndex | None] = {}


def _file_index(filename: str, module_globals: dict[str, Any] | None) -> _FileIndex | None:
    """The index of `filename` as `linecache` holds it now (re-read when it reloads)."""
    if not filename.endswith(".py"):
        return None
    linecache.checkcache(filename)
    lines = linecache.getlines(filename, module_globals)
    got = _files.get(filename)
    if got is not None and got.lines is lines:
        return got
    index: _FileIndex | None = _FileIndex(lines) if lines else None
    _files[filename] = index
    return index


def _located(obj: Any) -> tuple[_FileIndex, str] | None:
    """The index of the file that defines a function's code object or a class, and the
    definition's key in it."""
    if isinstance(obj, types.CodeType):
        index = _file_index(obj.co_filename, None)
        return None if index is None else (index, f"f {obj.co_firstlineno} {obj.co_name}")
    if isinstance(obj, type):
        module = inspect.getmodule(obj)
        filename = getattr(module, "__file__", None)
        if not filename:
            return None
        index = _file_index(filename, vars(module))
        return None if index is None else (index, f"c {obj.__qualname__}")
    return None


def _node(index: _FileIndex, obj: Any) -> _Definition | None:
    try:
        if isinstance(obj, types.CodeType):
            return index.function(obj.co_firstlineno, obj.co_name)
        return index.cls(obj.__qualname__)
    except (SyntaxError, ValueError):
        return None


def _hash_definition(node: _Definition, strip_decorators: bool) -> tuple[str, ast.AST]:
    strip_docstrings(node)
    if strip_decorators and not isinstance(node, ast.ClassDef) and node.decorator_list:
        node = copy.copy(node)
        node.decorator_list = []
    tree = ast.Module(body=[node], type_ignores=[])
    return hash_text(ast.dump(tree)), tree


def parse(obj: Any, strip_decorators: bool) -> tuple[str, Calls | None] | None:
    """(hash of the source, its dynamic calls) of a function, code object or class;
    None: no source. The calls are None when the source is a fragment that does not
    parse on its own (a lambda inside a larger expression)."""
    found = _located(obj)
    if found is not None:
        index, key = found
        key += f" {int(strip_decorators)}"
        known = index.record.get(key)
        if known is not None:
            return known[0], tuple(tuple(c) for c in known[1])  # type: ignore[misc]
        node = _node(index, obj)
        if node is not None:
            digest, tree = _hash_definition(node, strip_decorators)
            calls = dynamic_calls(tree)
            index.remember(key, digest, calls)
            return digest, calls
    return _parse_source(obj, strip_decorators)


def _parse_source(obj: Any, strip_decorators: bool) -> tuple[str, Calls | None] | None:
    """`parse` through `inspect.getsource`, for what the file index does not hold."""
    try:
        src = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return None
    try:
        tree = strip_docstrings(ast.parse(src))
    except SyntaxError:  # a lambda inside a larger expression
        return hash_text(src), None
    if strip_decorators:  # the decorators of the definition itself, e.g. @step(retries=2)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                node.decorator_list = []
                break
    return hash_text(ast.dump(tree)), dynamic_calls(tree)


def dynamic_calls(tree: ast.AST) -> Calls:
    """The calls of a definition that may look names up at run time (see `Calls`)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        callee = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        arg = node.args[1] if callee == "getattr" and len(node.args) > 1 else node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            if callee == "getattr":
                found.append((callee, "literal", arg.value, ""))
            continue
        if callee == "getattr":
            first = node.args[0]
            holder = first.id if isinstance(first, ast.Name) else ""
            found.append((callee, "computed", holder, ast.unparse(first)))
        elif callee in DYNAMIC_CALLS:
            found.append((callee, "computed", "", ""))
    return tuple(found)


class _Definitions:
    """The records on disk (see the module docstring): read once per file and process,
    written back when `save_definitions` runs after new definitions were read."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.dirty: dict[str, _FileIndex] = {}

    def load(self, digest: str) -> dict[str, list[Any]]:
        if self.folder is None:
            return {}
        try:
            record = json.loads((self.folder / f"{digest}.json").read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(record, dict) or not all(
            isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) for v in record.values()
        ):
            return {}  # not one of ours: read from the source, written again
        return record

    def changed(self, index: _FileIndex) -> None:
        if self.folder is not None:
            self.dirty[index.digest] = index

    def save(self) -> None:
        dirty, self.dirty = self.dirty, {}
        if self.folder is None or not dirty:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for digest, index in dirty.items():
                fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
                with os.fdopen(fd, "w") as f:  # a copy: another thread may add to it
                    json.dump(index.record.copy(), f, separators=(",", ":"))
                os.replace(tmp, self.folder / f"{digest}.json")
        except OSError:
            pass  # a cache only: a read-only home parses again next time


_definitions = _Definitions()


def use_definition_cache(folder: Path | None) -> None:
    """Keep definitions read in `folder` (None: in this process only)."""
    if folder != _definitions.folder:
        _definitions.folder = folder
        _definitions.dirty.clear()
        _files.clear()


def save_definitions() -> None:
    """Write the definitions read since the last call to the folder in use."""
    _definitions.save()


def code_digest(code: types.CodeType) -> str:
    """Bytecode, constants and names, for code with no source (made by exec)."""
    return hash_text(repr(marshal.dumps(code.replace(co_filename="", co_firstlineno=1))))


def code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= code_names(const)
    return names


_IMPORT_NAME = dis.opmap["IMPORT_NAME"]


def imports(code: types.CodeType) -> list[tuple[str, int, tuple[str, ...]]]:
    """`(module, level, fromlist)` of every import statement in the code (nested too)."""
    found = []
    consts: list[Any] = []
    # every instruction (and inline cache entry) is two bytes, opcode first: a body
    # without an IMPORT_NAME opcode is not decoded at all
    has_import = _IMPORT_NAME in code.co_code[::2]
    for ins in dis.get_instructions(code) if has_import else ():
        if ins.opname == "IMPORT_NAME" and len(consts) >= 2:
            level, fromlist = consts[-2], consts[-1]
            found.append((ins.argval, int(level or 0), tuple(fromlist or ())))
        consts = [*consts[-1:], ins.argval] if ins.opname == "LOAD_CONST" else []
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found += imports(const)
    return found
