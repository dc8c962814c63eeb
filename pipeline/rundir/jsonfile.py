"""Reading a run directory's JSON files into typed records: errors name the file, the line or the field."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError

from pipeline.records import BadInput, read_json


def read_json_object(path: Path) -> dict:
    """A JSON object from ``path``; malformed JSON or another type raises BadInput naming the file and line."""
    path = Path(path)
    data = read_json(path)    # bad UTF-8 or JSON: BadInput naming the line (and the key holding a bad byte)
    if not isinstance(data, dict):
        raise BadInput(f"{path}, line 1: expected a JSON object, got {type(data).__name__}")
    return data


def describe_invalid(path: Path, exc: ValidationError, limit: int = 5) -> str:
    """'FILE, field a.b[2].c: message' for each of a validation error's first ``limit`` problems."""
    lines = []
    for err in exc.errors()[:limit]:
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p[:1].isupper())]   # drop union member names
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"
        message = {"extra_forbidden": "unknown field", "missing": "required field is missing"}.get(
            err["type"], err["msg"].removeprefix("Value error, "))
        lines.append(f"{path}, field {field}: {message}")
    more = len(exc.errors()) - limit
    return "\n".join(lines) + (f"\n(and {more} more)" if more > 0 else "")


def validated(model: type[BaseModel], data: dict, path: Path) -> BaseModel:
    """``data`` as ``model``; an unknown, missing or mistyped field raises BadInput naming the file and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadInput(describe_invalid(path, exc)) from None
