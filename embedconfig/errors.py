"""The one error a bad config raises, named by its field, and the translation of pydantic's errors into it."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Mapping, Union, get_args, get_origin

if typing.TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """A config value is missing or not allowed; the message starts with the field's path.

    Raised inside a section's validator, ``field`` is relative to that section (``""``: the field
    being validated); :func:`config_error_from` prefixes the section's path.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"config field '{field}': {message}")
        self.field = field
        self.message = message


_KINDS = {
    "int": "an integer",
    "string": "a string",
    "float": "a number",
    "bool": "true or false",
    "list": "a list",
    "tuple": "a list",
    "dict": "a mapping",
    "model": "a mapping",
    "model_attributes": "a mapping",
}


def config_error_from(error: ValidationError, model: type[BaseModel], raw: Any) -> ConfigError:
    """The first of pydantic's errors as a :class:`ConfigError`, worded as the project words them:
    the field's dotted path (``features[2].max_length``), the allowed values, the bound."""
    errors = error.errors(include_url=False)
    e = errors[0]
    loc, kind, value = tuple(e["loc"]), e["type"], e.get("input")
    path = _path_in(raw, loc, key_is_last=kind in ("missing", "extra_forbidden"))
    if loc[-1:] == ("[key]",):  # a mapping's key, not its value, is not allowed
        kind = "key_" + kind  # the path already ends in the key
    cause = (e.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):
        inner = cause.field
        field = path + (inner if not inner or inner.startswith("[") else (f".{inner}" if path else inner))
        return ConfigError(field or "<root>", cause.message)
    field = path or "<root>"
    choices = _choices(model, path)
    if kind == "missing":
        return ConfigError(field, "is required" + (f"; one of {list(choices)}" if choices else ""))
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, path.rpartition(".")[0] if "." in path else "")
        return ConfigError(field, f"unknown key; allowed keys here: {allowed}")
    if kind == "key_literal_error":
        return ConfigError(field, f"{value!r} is not allowed here; one of {list(_choices(model, path.rpartition('.')[0], key=True))}")
    union = [_kind_of(other["type"]) for other in errors if tuple(other["loc"][: len(loc) - 1]) == loc[:-1]]
    if len(union) > 1 and all(union):  # one error per member of a union of scalar types
        return ConfigError(field, f"must be {' or '.join(dict.fromkeys(union))}, got {value!r}")
    if kind == "literal_error":
        return ConfigError(field, f"{value!r} is not allowed; one of {list(choices) or e['ctx']['expected']}")
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bounds = _bounds(model, path) or {kind: next(iter(e["ctx"].values()))}
        if bounds.keys() == {"greater_than_equal", "less_than_equal"}:
            return ConfigError(field, f"must be between {_number(bounds['greater_than_equal'])} and {_number(bounds['less_than_equal'])}, got {value!r}")
        return ConfigError(field, f"must be {' and '.join(f'{_SYMBOLS[k]} {_number(v)}' for k, v in bounds.items())}, got {value!r}")
    if kind == "too_short" and e["ctx"].get("min_length") == 1:
        return ConfigError(field, "needs at least one entry")
    if _kind_of(kind):
        return ConfigError(field, f"must be {_kind_of(kind)}, got {value!r}")
    if kind == "value_error" and cause is not None:
        return ConfigError(field, str(cause))
    return ConfigError(field, e["msg"])


_SYMBOLS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bounds(model: type, path: str) -> dict[str, float]:
    """The declared bounds of the number at ``path`` ({'greater_than_equal': 0, 'less_than': 1}), in that order."""
    import annotated_types

    annotation = _model_at(model, path)
    parent, _, name = path.rpartition(".")
    owner = _unwrap(_model_at(model, parent)) if parent else model
    metadata = list(getattr(getattr(owner, "model_fields", {}).get(name), "metadata", []))
    while get_origin(annotation) is typing.Annotated:  # bounds inside an Annotated element type
        metadata += list(get_args(annotation)[1:])
        annotation = get_args(annotation)[0]
    found: dict[str, float] = {}
    for item in metadata:
        for attr, kind in (("ge", "greater_than_equal"), ("gt", "greater_than"), ("le", "less_than_equal"), ("lt", "less_than")):
            if isinstance(item, getattr(annotated_types, attr.capitalize())):
                found[kind] = getattr(item, attr)
    return found


def _kind_of(error_type: str) -> str | None:
    """'int_type' -> 'an integer'; None for an error that is not about the value's type."""
    for prefix, name in _KINDS.items():
        if error_type in (f"{prefix}_type", f"{prefix}_parsing"):
            return name
    return None


def _path_in(raw: Any, loc: tuple, key_is_last: bool) -> str:
    """pydantic's location as a dotted path through the input, dropping what is not in the input
    (the tags pydantic adds for union members)."""
    parts, node = [], raw
    for i, item in enumerate(loc):
        if isinstance(node, Mapping) and item in node:
            parts.append(f".{item}")
            node = node[item]
        elif isinstance(node, (list, tuple)) and isinstance(item, int) and 0 <= item < len(node):
            parts.append(f"[{item}]")
            node = node[item]
        elif key_is_last and i == len(loc) - 1 and isinstance(item, str):
            parts.append(f".{item}")
        else:
            node = None
    return "".join(parts).lstrip(".")


def _model_at(model: type, path: str) -> Any:
    """The annotation at a dotted path of ``model`` (list indices and mapping keys step into the
    element type); None where the path leaves the declared fields."""
    annotation: Any = model
    for step in path.replace("[", ".[").split(".") if path else []:
        if not step:
            continue
        annotation = _unwrap(annotation)
        if step.startswith("["):
            args = [a for a in get_args(annotation) if a is not Ellipsis]
            annotation = args[0] if args else None
        elif isinstance(annotation, type) and hasattr(annotation, "model_fields") and step in annotation.model_fields:
            annotation = annotation.model_fields[step].annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    return annotation


def _unwrap(annotation: Any) -> Any:
    """Optional[X] and Annotated[X, ...] -> X."""
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _choices(model: type, path: str, key: bool = False) -> tuple:
    """The allowed values of the field at ``path`` (``key``: of the keys of the mapping there)."""
    annotation = _unwrap(_model_at(model, path))
    if key:
        annotation = _unwrap(get_args(annotation)[0]) if get_origin(annotation) is dict else None
    return get_args(annotation) if get_origin(annotation) is Literal else ()


def _allowed_keys(model: type, path: str) -> list[str]:
    annotation = _unwrap(_model_at(model, path))
    return sorted(getattr(annotation, "model_fields", {}))
