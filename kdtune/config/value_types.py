"""Whether a YAML value fits a config field's annotation, and its coerced value.

``int | str``, ``list[float] | None``, ``dict[str, list[float]]`` and the like, as the config's
dataclasses annotate them; PyYAML reads ``1e-4`` as a string, so numbers in strings are
accepted where a number is expected. Used by the loader and by :class:`ParamSpace`'s choices.
"""

from __future__ import annotations

import types
import typing
from typing import Any


def _type_ok(value: Any, annotation: Any) -> tuple[bool, Any]:
    """Check/coerce ``value`` against a dataclass annotation. Returns (ok, coerced)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None:
            return (type(None) in args), None
        for arg in args:
            if arg is type(None):
                continue
            ok, coerced = _type_ok(value, arg)
            if ok:
                return True, coerced
        return False, value
    if origin is dict:
        return _dict_ok(value, *(typing.get_args(annotation) or (Any, Any)))
    if origin is list:
        return _list_ok(value, (typing.get_args(annotation) or (Any,))[0])
    return _scalar_ok(value, annotation)


def _dict_ok(value: Any, key_t: Any, item_t: Any) -> tuple[bool, Any]:
    if not isinstance(value, dict):
        return False, value
    out = {}
    for k, item in value.items():
        (ok_k, k2), (ok, coerced) = _type_ok(k, key_t), _type_ok(item, item_t)
        if not (ok_k and ok):
            return False, value
        out[k2] = coerced
    return True, out


def _list_ok(value: Any, item_t: Any) -> tuple[bool, Any]:
    if not isinstance(value, list):
        return False, value
    out = []
    for item in value:
        ok, coerced = _type_ok(item, item_t)
        if not ok:
            return False, value
        out.append(coerced)
    return True, out


def _scalar_ok(value: Any, annotation: Any) -> tuple[bool, Any]:
    if annotation is Any:
        return True, value
    if annotation is bool or isinstance(value, bool):
        return annotation is bool and isinstance(value, bool), value
    if annotation is int:
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return isinstance(value, int), value
    if annotation is float:
        if isinstance(value, (int, float)):
            return True, float(value)
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if annotation is str:
        return isinstance(value, str), value
    return isinstance(value, annotation), value


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(parts) + " or null"
    if origin is list:
        (item_t,) = typing.get_args(annotation)
        return f"a list of {_describe(item_t).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        _, item_t = typing.get_args(annotation)
        return f"a mapping of names to {_describe(item_t).removeprefix('a ')}"
    return _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))
