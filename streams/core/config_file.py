"""Reading a YAML settings file into a pydantic model, with errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from streams.core.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)


def load_model(path: Path, model: type[Model], error: type[ConfigError], *, what: str) -> Model:
    """``path`` validated as ``model``; an empty file is an empty mapping. Raises ``error``, naming
    ``what`` the file is, when it cannot be read or is not valid."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from exc
    try:
        return model.model_validate(document or {})
    except ValidationError as exc:
        raise error(f"{path}: invalid {what}: {'; '.join(validation_problems(exc))}") from exc


def validation_problems(exc: ValidationError) -> list[str]:
    """One ``field.path: message`` per problem."""
    return [_describe(error) for error in exc.errors()]


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    return f"{location}: {error['msg']}"
