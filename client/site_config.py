"""``SITE/site.toml``: who the site is, where its state lives, its privacy budget and consent policy."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from modalities.settings import Settings, read_toml, validate_config

SITE_FILE = "site.toml"
DEFAULT_STATE = ".polyclinic"


class SiteSection(Settings):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    state: Path | None = None
    """State directory; relative paths are taken from the site folder. Default: SITE/.polyclinic."""


class ConsentSection(Settings):
    policy: Literal["opt-in", "opt-out"] = "opt-in"
    """opt-in: only patients with an active research permit are used; opt-out: all but those who objected."""


class PrivacySection(Settings):
    epsilon: float = Field(default=8.0, gt=0)
    delta: float = Field(default=1e-5, gt=0, lt=1)


class SiteConfig(Settings):
    site: SiteSection
    consent: ConsentSection = ConsentSection()
    privacy: PrivacySection = PrivacySection()


def site_id_from_folder(root: Path) -> str:
    """A valid site id derived from the folder name, for sites without a site.toml."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in root.resolve().name.lower())
    return cleaned.strip("-._")[:63] or "site"


def load_site_config(root: Path) -> tuple[SiteConfig, bool]:
    """The site's configuration and whether it came from defaults (no site.toml)."""
    path = root / SITE_FILE
    if not path.exists():
        return SiteConfig(site=SiteSection(id=site_id_from_folder(root))), True
    data = read_toml(path)
    data.setdefault("site", {}).setdefault("id", site_id_from_folder(root))
    return validate_config(SiteConfig, data, path), False


def resolve_state(root: Path, config: SiteConfig, override: Path | None) -> Path:
    """Where the site keeps state: ``--state``, then site.toml's ``[site] state``, then SITE/.polyclinic."""
    if override is not None:
        return override
    if config.site.state is not None:
        return config.site.state if config.site.state.is_absolute() else root / config.site.state
    return root / DEFAULT_STATE
