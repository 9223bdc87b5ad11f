"""JSON <-> typed values: dataclasses, pydantic models, primitives, lists, dicts and optionals.

Values are stored as JSON. ``decode`` rebuilds them into the annotated type and is strict: a missing
field, an unknown field or a value of the wrong kind raises ``PayloadError`` naming the field.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from .errors import PayloadError

_ANY = (Any, object, None, inspect.Parameter.empty)
_ITSELF = (int, str, bool)
"""Types whose JSON value of exactly that type is already what ``decode`` rebuilds."""


MAX_DEPTH = 100
"""How deeply lists and objects may nest in a stored value (a bound well below Python's stack)."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_text(text: str, where: str) -> str:
    """Return ``text`` if both databases can store it, else raise ``PayloadError`` naming the
    character and its position: NUL (PostgreSQL refuses it) or a lone surrogate (not Unicode).
    The very check ``encode`` makes of each string."""
    return encode(text, where)


def _check_chars(text: str, what: str = "") -> None:
    if text.isascii() and "\x00" not in text:
        return
    bad = _UNSTORABLE.search(text)
    if bad is not None:
        raise _Unstorable(what + _unstorable_char(text, bad.start()))


def _unstorable_char(text: str, position: int) -> str:
    code = f"U+{ord(text[position]):04X}"
    if text[position] == "\x00":
        return f"contains a NUL character ({code}) at position {position}, which cannot be stored"
    return (
        f"contains a lone surrogate ({code}) at position {position}: not valid Unicode,"
        " so it cannot be stored"
    )


def encode(value: Any, where: str = "value") -> Any:
    """Return ``value`` as plain JSON data that both databases can store, or raise ``PayloadError``
    saying what cannot be stored and where (``where`` names the value, e.g. ``input.items[2]``):
    a type JSON lacks, a key that is not a string, a NUL character or lone surrogate in a string or
    key, a number that is not finite, or lists and objects nested deeper than ``MAX_DEPTH``."""
    try:
        return _encode(value, 0)
    except _Unstorable as exc:
        raise PayloadError(f"{where}{exc.location()}: {exc}") from None


class _Unstorable(Exception):
    """Raised inside ``encode``; each level adds its key on the way out, so success costs nothing."""

    def __init__(self, problem: str, locate: bool = True) -> None:
        super().__init__(problem)
        self.path: list[str | int] = []
        self.locate = locate

    def add(self, key: str | int) -> None:
        """Note the key or index of the value that holds the unstorable one (if it has a place)."""
        if self.locate:
            self.path.append(key)

    def location(self) -> str:
        return "".join(_step(key) for key in reversed(self.path))


def _step(key: str | int) -> str:
    if isinstance(key, int):
        return f"[{key}]"
    return f".{key}" if _SIMPLE_KEY.fullmatch(key) else f"[{key!r}]"


def _encode(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        _check_chars(value)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Unstorable(f"{value} is not a finite number, and JSON has no such number")
        return value
    if isinstance(value, Enum):
        return _encode(value.value, depth)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if depth >= MAX_DEPTH:
        raise _Unstorable(f"lists and objects nested deeper than {MAX_DEPTH} levels", locate=False)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_items(
            ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value)), depth
        )
    if hasattr(value, "model_dump") and not isinstance(value, type):
        return _encode(value.model_dump(mode="json"), depth)
    if isinstance(value, dict):
        return _encode_items(value.items(), depth)
    if isinstance(value, list | tuple | set | frozenset):
        encoded: list[Any] = []
        for position, item in enumerate(value):
            try:
                encoded.append(_encode(item, depth + 1))
            except _Unstorable as exc:
                exc.add(position)
                raise
        return encoded
    raise _Unstorable(f"cannot store a value of type {type(value).__name__} as JSON: {value!r}")


def _encode_items(items: Iterable[tuple[Any, Any]], depth: int) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for key, item in items:
        name = _key(key)
        try:
            encoded[name] = _encode(item, depth + 1)
        except _Unstorable as exc:
            exc.add(name)
            raise
    return encoded


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise _Unstorable(f"dictionary keys must be strings to store as JSON, not {key!r}")
    _check_chars(key, f"the key {key!r} ")
    return key


def displayable(value: Any) -> Any:
    """``value`` with each lone surrogate replaced by U+FFFD, so a page can show what an older
    version stored (SQLite kept them in JSON; a page cannot encode them as UTF-8)."""
    text = json.dumps(value, ensure_ascii=False)
    if _SURROGATE.search(text) is None:
        return value
    return json.loads(_SURROGATE.sub("\ufffd", text))


def decode(data: Any, tp: Any, where: str = "value") -> Any:
    """Rebuild ``data`` as ``tp``; ``where`` names the place in error messages."""
    if tp in _ANY or (type(data) is tp and tp in _ITSELF):
        return data
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _decode_union(data, tp, where)
    if origin in (list, tuple, set, frozenset):
        return _decode_sequence(data, tp, origin, where)
    if origin is dict:
        return _decode_dict(data, tp, where)
    if origin is typing.Literal:
        if data not in typing.get_args(tp):
            raise PayloadError(f"{where}: expected one of {typing.get_args(tp)}, got {data!r}")
        return data
    if isinstance(tp, type):
        return _decode_class(data, tp, where)
    return data


def _decode_union(data: Any, tp: Any, where: str) -> Any:
    args = typing.get_args(tp)
    if data is None:
        if type(None) in args:
            return None
        raise PayloadError(f"{where}: a value is required, got null")
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return decode(data, arg, where)
        except PayloadError as exc:
            errors.append(str(exc))
    raise PayloadError("; ".join(errors))


def _decode_sequence(data: Any, tp: Any, origin: type, where: str) -> Any:
    if not isinstance(data, list):
        raise PayloadError(f"{where}: expected a list, got {_kind(data)}")
    args = typing.get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(data):
            raise PayloadError(f"{where}: expected {len(args)} items, got {len(data)}")
        return tuple(
            decode(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(data, args, strict=True))
        )
    item = args[0] if args else Any
    return origin(decode(v, item, f"{where}[{i}]") for i, v in enumerate(data))


def _decode_dict(data: Any, tp: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise PayloadError(f"{where}: expected an object, got {_kind(data)}")
    args = typing.get_args(tp)
    value_type = args[1] if len(args) == 2 else Any
    return {k: decode(v, value_type, f"{where}.{k}") for k, v in data.items()}


def _decode_class(data: Any, tp: type, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(data, tp, where)
    if hasattr(tp, "model_validate"):
        try:
            return tp.model_validate(data)
        except ValueError as exc:
            raise PayloadError(f"{where}: {exc}") from exc
    if tp is bool:
        if not isinstance(data, bool):
            raise PayloadError(f"{where}: expected true or false, got {_kind(data)}")
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise PayloadError(f"{where}: expected an integer, got {_kind(data)}")
        return data
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise PayloadError(f"{where}: expected a number, got {_kind(data)}")
        return float(data)
    if tp is str:
        if not isinstance(data, str):
            raise PayloadError(f"{where}: expected a string, got {_kind(data)}")
        return data
    if tp in (list, dict):
        if not isinstance(data, tp):
            raise PayloadError(f"{where}: expected {tp.__name__}, got {_kind(data)}")
        return data
    if issubclass(tp, Enum | datetime | date | Decimal):
        return _decode_scalar(data, tp, where)
    if data is None or isinstance(data, tp):
        return data
    raise PayloadError(f"{where}: expected {tp.__name__}, got {_kind(data)}")


def _decode_scalar(data: Any, tp: type, where: str) -> Any:
    try:
        if issubclass(tp, Enum):
            return tp(data)
        if issubclass(tp, datetime):
            return datetime.fromisoformat(data)
        if issubclass(tp, date):
            return date.fromisoformat(data)
        return Decimal(str(data))
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise PayloadError(f"{where}: not a valid {tp.__name__}: {data!r}") from exc


@functools.lru_cache(maxsize=512)
def _dataclass_shape(tp: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    """The dataclass's resolved type hints and its fields set by ``__init__``, by name: read once
    per class (resolving the hints compiles string annotations: most of a decode's cost)."""
    return typing.get_type_hints(tp), {f.name: f for f in dataclasses.fields(tp) if f.init}


def _decode_dataclass(data: Any, tp: type, where: str) -> Any:
    if not isinstance(data, dict):
        raise PayloadError(f"{where}: expected an object for {tp.__name__}, got {_kind(data)}")
    hints, fields = _dataclass_shape(tp)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise PayloadError(f"{where}: unknown field(s) for {tp.__name__}: {', '.join(unknown)}")
    missing = [
        name
        for name, f in fields.items()
        if name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise PayloadError(f"{where}: missing field(s) for {tp.__name__}: {', '.join(missing)}")
    values = {
        name: decode(value, hints.get(name, Any), f"{where}.{name}") for name, value in data.items()
    }
    return tp(**values)


def _kind(data: Any) -> str:
    if data is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    name = names.get(type(data), "an object" if isinstance(data, dict) else "a list")
    shown = repr(data)
    return f"{name} ({shown[:40]}...)" if len(shown) > 40 else f"{name} ({shown})"


def type_ref(tp: Any) -> str:
    """A dotted reference to a class, so a later process can check payloads against it.

    Returns "" for types that cannot be imported by name (generics, locals, builtins).
    """
    if not isinstance(tp, type) or tp.__module__ == "builtins" or "<locals>" in tp.__qualname__:
        return ""
    return f"{tp.__module__}:{tp.__qualname__}"


def resolve_type(ref: str) -> Any:
    """The class named by ``type_ref``, or ``Any`` when the name is empty or no longer imports."""
    if not ref:
        return Any
    module_name, _, qualname = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return Any
    return obj
