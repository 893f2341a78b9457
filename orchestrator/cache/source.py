"""Source and bytecode of user code, as the fingerprint reads them.

* `parse`: the hash of a function's, code object's or class's source as an AST dump
  without docstrings (and, for a function, without the decorators of its `def`), and
  the AST; None when there is no source (code made by `exec`). Each source file is
  parsed once per process (`_FileIndex`) and its definitions found by line and
  qualified name; what the index does not hold (a lambda, a file `linecache` reloaded
  since) is read through `inspect` as before. Both ways give the same hash;
* `code_digest`: bytecode, constants and names, for code without source;
* `code_names`: every name a code object and its nested code read;
* `imports`: the `import` statements inside a function body, from its bytecode.
"""

from __future__ import annotations

import ast
import copy
import dis
import inspect
import linecache
import marshal
import textwrap
import types
from typing import Any

from orchestrator.cache.hashing import hash_text


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
        tree = ast.parse("".join(lines))
        self.functions: dict[tuple[int, str], ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self._index(tree, "")

    def _index(self, node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, _Block):
                continue
            if not isinstance(child, _Definition):
                self._index(child, prefix)
                continue
            qual = f"{prefix}{child.name}"
            if isinstance(child, ast.ClassDef):
                self.classes.setdefault(qual, child)
            else:
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                self.functions.setdefault((first, child.name), child)
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
    try:
        index: _FileIndex | None = _FileIndex(lines) if lines else None
    except (SyntaxError, ValueError):
        index = None
    _files[filename] = index
    return index


def _indexed(obj: Any) -> _Definition | None:
    """The definition node of a function's code object or of a class, from its file."""
    if isinstance(obj, types.CodeType):
        index = _file_index(obj.co_filename, None)
        if index is None:
            return None
        return index.functions.get((obj.co_firstlineno, obj.co_name))
    if isinstance(obj, type):
        module = inspect.getmodule(obj)
        filename = getattr(module, "__file__", None)
        if not filename:
            return None
        index = _file_index(filename, vars(module))
        return None if index is None else index.classes.get(obj.__qualname__)
    return None


def _hash_definition(node: _Definition, strip_decorators: bool) -> tuple[str, ast.AST]:
    strip_docstrings(node)
    if strip_decorators and not isinstance(node, ast.ClassDef) and node.decorator_list:
        node = copy.copy(node)
        node.decorator_list = []
    tree = ast.Module(body=[node], type_ignores=[])
    return hash_text(ast.dump(tree)), tree


def parse(obj: Any, strip_decorators: bool) -> tuple[str, ast.AST | None] | None:
    """(hash of the source, its AST) of a function, code object or class; None: no source."""
    node = _indexed(obj)
    if node is not None:
        return _hash_definition(node, strip_decorators)
    return _parse_source(obj, strip_decorators)


def _parse_source(obj: Any, strip_decorators: bool) -> tuple[str, ast.AST | None] | None:
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
    return hash_text(ast.dump(tree)), tree


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
