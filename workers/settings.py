"""Process settings from the environment (``RECON_*``), one object for the CLI and the workers."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from models.database import DEFAULT_URL


class Settings(BaseSettings):
    """``RECON_DATABASE_URL`` (default ``sqlite:///recon.db``) and ``RECON_FLEET`` (a fleet file path)."""

    model_config = SettingsConfigDict(env_prefix="RECON_", extra="ignore")

    database_url: str = DEFAULT_URL
    fleet: str | None = None
