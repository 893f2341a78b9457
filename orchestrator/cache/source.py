"""Source and bytecode of user code, as the fingerprint reads them.

* `parse`: the hash of a function's, code object's or class's source as an AST dump
  without docstrings (and, for a function, without the decorators of its `def`), and
  the AST; None when there is no source (code made by `exec`);
* `code_digest`: bytecode, constants and names, for code without source;
* `code_names`: every name a code object and its nested code read;
* `imports`: the `import` statements inside a function body, from its bytecode.
"""

from __future__ import annotations

import ast
import dis
import inspect
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


def parse(obj: Any, strip_decorators: bool) -> tuple[str, ast.AST | None] | None:
    """(hash of the source, its AST) of a function, code object or class; None: no source."""
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


def imports(code: types.CodeType) -> list[tuple[str, int, tuple[str, ...]]]:
    """`(module, level, fromlist)` of every import statement in the code (nested too)."""
    found = []
    consts: list[Any] = []
    for ins in dis.get_instructions(code):
        if ins.opname == "IMPORT_NAME" and len(consts) >= 2:
            level, fromlist = consts[-2], consts[-1]
            found.append((ins.argval, int(level or 0), tuple(fromlist or ())))
        consts = [*consts[-1:], ins.argval] if ins.opname == "LOAD_CONST" else []
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found += imports(const)
    return found
