"""Config errors, with the "expected ..." texts derived from the field declarations.

A field's type and its ``Field(ge=..., le=..., min_length=...)`` limits are written once, in
:mod:`nfkit.config.schema`; :func:`expected` turns them into words (``Field(ge=1, le=4096)`` on
an ``int`` reads "an integer from 1 to 4096"), so a limit changed in the model changes its
message too.  A :class:`Noun` in the field's ``Annotated[...]`` says what the value *is* when
the type alone would not ("a core id", "a number of seconds").

:func:`problems` turns pydantic's ``ValidationError`` into nfkit's ``(field_path, message)``
pairs; :class:`ConfigError` prints them one line each, naming the file.
"""

from __future__ import annotations

import re
import tomllib
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from ..errors import NfkitError
from .toml import render

__all__ = ["ConfigError", "PortNotFound", "Noun", "expected", "problems", "invalid",
           "invalid_many", "describe_toml_error"]

# pydantic error types of nfkit's own validators: one message, or several (field, message).
_INVALID = "nfkit_invalid"
_INVALID_MANY = "nfkit_invalid_many"


class ConfigError(NfkitError, ValueError):
    """A configuration could not be read, parsed or validated.

    ``path`` is the file (or the ``source`` label given for text) and ``errors`` every problem
    found, as ``(field_path, message)`` pairs such as ``("ports[0].cores", "expected a non-empty
    list of core ids, got []")``.  ``field_path`` is ``""`` for problems with the file as a
    whole (unreadable, not TOML).  The exception's text has one line per problem, each
    starting with the file, so it can be printed as is (an unknown-field message already says
    where the field is, so its line omits the field path).  It is also a :class:`ValueError`,
    and it pickles, so it can cross process boundaries.
    """

    def __init__(self, path: str, errors: Sequence[tuple[str, str]]) -> None:
        self.path = path
        self.errors: list[tuple[str, str]] = list(errors)
        super().__init__("\n".join(_format_problem(path, field, message)
                                   for field, message in self.errors))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, list[tuple[str, str]]]]:
        """Rebuild from ``path`` and ``errors`` (the default would pass the message only)."""
        return type(self), (self.path, self.errors)


def _format_problem(path: str, field: str, message: str) -> str:
    """One line of a :class:`ConfigError`: ``file: field: message`` (an unknown-field
    message already says where the field is, so it is printed without the field path)."""
    if not field or message.startswith("unknown field "):
        return f"{path}: {message}"
    return f"{path}: {field}: {message}"


class PortNotFound(NfkitError, KeyError):
    """:meth:`RuntimeConfig.port` was asked for a name no port has (capsule's
    ``PortError::NotFound``).  It is also a :class:`KeyError`."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = list(known)

    def __reduce__(self) -> tuple[type[PortNotFound], tuple[str, list[str]]]:
        """Rebuild from ``name`` and ``known`` (the default would pass the name only)."""
        return type(self), (self.name, self.known)

    def __str__(self) -> str:
        known = ", ".join(self.known) if self.known else "none"
        return f"port {self.name!r} is not found (known ports: {known})"


def invalid(message: str) -> PydanticCustomError:
    """What a field validator raises: ``message`` becomes the field's problem as is."""
    return PydanticCustomError(_INVALID, "{message}", {"message": message})


def invalid_many(found: list[tuple[str, str]]) -> PydanticCustomError:
    """What a validator raises for problems of several fields, ``(field_path, message)``."""
    return PydanticCustomError(_INVALID_MANY, "{detail}", {
        "detail": "; ".join(f"{path}: {message}" for path, message in found), "problems": found})


# --------------------------------------------------------------------------------------------
# The words for a declaration
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Noun:
    """``Annotated[int, Field(ge=0), Noun("a core id")]``: what the value is, in messages
    ("expected a core id (an integer >= 0)").  Plural for lists: the noun plus "s"."""

    text: str


_KINDS: dict[type, str] = {bool: "a boolean", int: "an integer", float: "a number",
                           str: "a string"}


def _unwrap(annotation: Any, metadata: Sequence[Any] = ()) -> tuple[Any, list[Any]]:
    """``annotation`` without ``Annotated`` and ``| None``, and every metadata item found
    on the way (``Field(...)`` opened into its ``Ge``/``MinLen``... items)."""
    found = list(metadata)
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = get_args(annotation)
            for item in extra:
                found += item.metadata if isinstance(item, FieldInfo) else [item]
        elif origin in (Union, types.UnionType):
            arms = [arm for arm in get_args(annotation) if arm is not type(None)]
            if len(arms) != 1:
                return annotation, found
            annotation = arms[0]
        else:
            return annotation, found


def _limits(metadata: Sequence[Any]) -> str:
    """``Ge(1), Le(4096)`` -> "from 1 to 4096"; ``Gt(0), Le(60)`` -> "> 0, at most 60"."""
    bounds = {type(m): getattr(m, type(m).__name__.lower())
              for m in metadata if isinstance(m, (Ge, Gt, Le, Lt))}
    if Ge in bounds and Le in bounds:
        return f"from {render(bounds[Ge])} to {render(bounds[Le])}"
    words = {Gt: "> {}", Ge: ">= {}", Le: "at most {}", Lt: "< {}"}
    return ", ".join(words[kind].format(render(bounds[kind])) for kind in words
                     if kind in bounds)


def _lengths(metadata: Sequence[Any], unit: str) -> tuple[str, str]:
    """``(prefix, suffix)`` for length limits: ("non-empty ", "") for ``min_length=1``,
    else ("", " of at least 2 characters") and the like."""
    low = max((m.min_length for m in metadata if isinstance(m, MinLen)), default=0)
    high = min((m.max_length for m in metadata if isinstance(m, MaxLen)), default=None)
    if low == 1 and high is None:
        return "non-empty ", ""
    parts = ([f"at least {low}"] if low else []) + ([f"at most {high}"] if high is not None
                                                    else [])
    return "", f" of {' and '.join(parts)} {unit}" if parts else ""


def expected(annotation: Any, metadata: Sequence[Any] = (), name: str = "") -> str:
    """What a field declared as ``annotation`` (with ``metadata``) accepts, in words.

    ``name`` is the field's key, used for arrays of tables ("an array of tables ([[ports]])").
    """
    annotation, metadata = _unwrap(annotation, metadata)
    noun = next((m.text for m in reversed(metadata) if isinstance(m, Noun)), None)
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(render(value) for value in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a table"
    if origin is list:
        item, item_metadata = _unwrap(get_args(annotation)[0])
        if isinstance(item, type) and issubclass(item, BaseModel):
            return f"an array of tables ([[{name}]])"
        prefix, suffix = _lengths(metadata, "items")
        return f"a {prefix}list of {_plural(item, item_metadata)}{suffix}"
    kind = _KINDS.get(annotation)
    if kind is None:  # a type these words do not cover: its name
        return f"a {getattr(annotation, '__name__', annotation)}"
    if annotation is str:
        prefix, suffix = _lengths(metadata, "characters")
        kind = f"a {prefix}string{suffix}" if prefix else f"{kind}{suffix}"
    limits = _limits(metadata) if annotation in (int, float) else ""
    if noun is None:
        if not limits:
            return kind
        return f"{kind} {limits}" if limits.startswith("from") or "," not in limits \
            else f"{kind} ({limits})"
    if annotation is float and limits:   # "a number of seconds" already says "a number"
        return f"{noun} {limits}" if limits.startswith("from") else f"{noun} ({limits})"
    if annotation is bool:
        return f"{noun} ({kind})"
    return f"{noun} ({kind}{' ' + limits if limits else ''})"


def _plural(annotation: Any, metadata: Sequence[Any]) -> str:
    """"core ids" for items declared with ``Noun("a core id")``, else "integers"..."""
    noun = next((m.text for m in reversed(metadata) if isinstance(m, Noun)), None)
    single = noun or _KINDS.get(annotation, f"a {getattr(annotation, '__name__', annotation)}")
    return re.sub(r"^(an?|one) ", "", single) + "s"


# --------------------------------------------------------------------------------------------
# pydantic's errors as nfkit's
# --------------------------------------------------------------------------------------------

def field_path(loc: Sequence[int | str]) -> str:
    """``("ports", 0, "cores")`` -> ``"ports[0].cores"``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _declaration(root: type[BaseModel], loc: Sequence[int | str]) -> tuple[Any, list[Any], str]:
    """``(annotation, metadata, key)`` of the field at ``loc`` under ``root``; the annotation
    is ``None`` when ``loc`` leads nowhere (an unknown key)."""
    annotation: Any = root
    metadata: list[Any] = []
    key = ""
    for part in loc:
        if isinstance(part, int):
            if get_origin(annotation) is not list:
                return None, [], key
            annotation, metadata = _unwrap(get_args(annotation)[0])
        else:
            fields = getattr(annotation, "model_fields", None) \
                if isinstance(annotation, type) else None
            if not fields or part not in fields:
                return None, [], key
            info = fields[part]
            annotation, metadata = _unwrap(info.annotation, info.metadata)
            key = part
    return annotation, metadata, key


def problems(exc: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    """pydantic's errors of validating ``root`` as ``(field_path, message)`` pairs, in
    pydantic's order; each message says what the field's declaration expects."""
    found: list[tuple[str, str]] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        kind = error["type"]
        if kind == _INVALID_MANY:
            found += [p for p in error["ctx"]["problems"] if p not in found]
            continue
        if kind == "missing":
            message = "field required"
        elif kind == "extra_forbidden":
            parent, _, _ = _declaration(root, loc[:-1])
            known = ", ".join(getattr(parent, "model_fields", {})) or "?"
            where = f"in {field_path(loc[:-1])}" if loc[:-1] else "at the top level"
            message = f"unknown field {str(loc[-1])!r} {where} (known fields: {known})"
        elif kind == _INVALID:
            message = error["ctx"]["message"]
        else:
            annotation, metadata, key = _declaration(root, loc)
            what = expected(annotation, metadata, key) if annotation is not None \
                else error["msg"]  # a place no declaration describes: pydantic's own words
            message = f"expected {what}, got {render(error['input'])}"
        found.append((field_path(loc), message))
    return found


# tomllib appends the position of a syntax error to its message in one of these two forms.
_TOML_POSITION = re.compile(r"^(?P<reason>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$",
                            re.DOTALL)
_TOML_AT_END = re.compile(r"^(?P<reason>.*) \(at end of document\)$", re.DOTALL)


def describe_toml_error(exc: tomllib.TOMLDecodeError, text: str) -> str:
    """``line L, column C: invalid TOML (reason)`` from tomllib's message.

    tomllib (Python 3.11) has no position attributes; it appends ``(at line L, column C)`` or
    ``(at end of document)`` to the message.  The latter is turned into the position just
    after the last character, so every syntax error reads the same way.
    """
    message = str(exc)
    match = _TOML_POSITION.match(message)
    if match:
        return (f"line {match['line']}, column {match['col']}: "
                f"invalid TOML ({match['reason']})")
    match = _TOML_AT_END.match(message)
    if match:
        line = text.count("\n") + 1
        column = len(text) - (text.rfind("\n") + 1) + 1
        return f"line {line}, column {column}: invalid TOML ({match['reason']}, at end of file)"
    return f"invalid TOML ({message})"
