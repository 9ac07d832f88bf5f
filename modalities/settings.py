"""Typed, frozen settings shared by all modality settings: validated once at the boundary."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_snake


def _kebab(name: str) -> str:
    return to_snake(name).replace("_", "-")


S = TypeVar("S", bound="Settings")


class Settings(BaseModel):
    """Base for every config section: unknown keys are errors, kebab-case in TOML, snake_case in Python."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=_kebab, populate_by_name=True)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key to fix."""


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at ``path``, or a :class:`ConfigError` naming the file and what to do."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax and retry") from exc


def validate_config(model: type[S], data: dict[str, Any], path: Path) -> S:
    """``model`` validated from ``data``; errors list every bad key as ``section.key: problem``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: invalid configuration ({problems})") from exc
