"""TOML output: a config written back as the text :func:`~nfkit.config.load_config` reads.

:func:`render` writes one value the way a user types it; error messages use it for "got ..."
so the user sees their value as in their file.  :func:`dump` writes a whole model, walking its
declaration: scalar fields first, then each sub-model as a ``[table]``, then each list of
sub-models as ``[[array of tables]]``, so a new field or table needs no change here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

__all__ = ["render", "dump"]

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def render(value: Any) -> str:
    """``value`` written as TOML (``true``, ``"text"``, ``[1, 2]``, ``{ a = 1 }``...)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and value != value:
            return "nan"
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(
            _ESCAPES.get(ch) or (f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7f
                                 else ch)
            for ch in value)
        return f'"{escaped}"'
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_none=True)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {render(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render(item) for item in value) + "]"
    if hasattr(value, "isoformat"):  # TOML dates and times
        return str(value.isoformat())
    return repr(value)


def _key(key: object) -> str:
    """A TOML key: bare when it can be, else quoted."""
    text = str(key)
    return text if _BARE_KEY.fullmatch(text) else render(text)


def dump(model: BaseModel, *, exclude_defaults: bool = False) -> str:
    """``model`` as TOML text that validates back into an equal model.

    By default every field is written, defaults included, so the text shows the effective
    configuration; ``exclude_defaults=True`` writes only what differs (required fields are
    always written, an empty required array of tables as ``key = []``).  ``None`` values are
    left out, as TOML has no null; a table left with no lines is left out.
    """
    lines, tables, arrays = _split(model, exclude_defaults)
    for name, table in tables:
        body, _, _ = _split(table, exclude_defaults)
        if body:
            lines += ["", f"[{name}]", *body]
    for name, items in arrays:
        for item in items:
            body, _, _ = _split(item, exclude_defaults)
            lines += ["", f"[[{name}]]", *body]
    return "\n".join(lines) + "\n"


def _split(model: BaseModel, exclude_defaults: bool) -> tuple[
        list[str], list[tuple[str, BaseModel]], list[tuple[str, list[BaseModel]]]]:
    """``model``'s ``key = value`` lines, its sub-tables and its arrays of tables, in
    declaration order."""
    lines: list[str] = []
    tables: list[tuple[str, BaseModel]] = []
    arrays: list[tuple[str, list[BaseModel]]] = []
    for name, value in _items(model, exclude_defaults):
        if isinstance(value, BaseModel):
            tables.append((name, value))
        elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            arrays.append((name, value))
        else:
            lines.append(f"{name} = {render(value)}")
    return lines, tables, arrays


def _items(model: BaseModel, exclude_defaults: bool) -> Iterable[tuple[str, Any]]:
    """``(field, value)`` of ``model`` to write, in declaration order."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if value is None:
            continue
        if exclude_defaults and not info.is_required() and not isinstance(value, BaseModel):
            default = info.get_default(call_default_factory=True)
            if value == default:
                continue
        yield name, value
