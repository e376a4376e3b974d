"""Where the CLI finds its portal and token: the environment, else the config file.

The file is `$XDG_CONFIG_HOME/trainyard/config.toml` (`~/.config/trainyard/config.toml` when
unset), written with mode 0600 because it holds a bearer token. `TRAINYARD_URL` and
`TRAINYARD_TOKEN` each override the file's value, so CI can run without a file at all.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

URL_ENV = "TRAINYARD_URL"
TOKEN_ENV = "TRAINYARD_TOKEN"  # noqa: S105 (the variable's name, not a secret)


class ConfigError(Exception):
    """The config file is unreadable, or no portal or token is configured."""


@dataclass(frozen=True)
class Settings:
    url: str
    token: str


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "trainyard" / "config.toml"


def config_read(path: Path | None = None) -> dict[str, str]:
    """The file's `url` and `token` (either may be missing); {} when there is no file."""
    path = path or config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return {key: str(data[key]) for key in ("url", "token") if isinstance(data.get(key), str)}


def config_write(*, url: str, token: str, path: Path | None = None) -> Path:
    """Write the file with mode 0600 (its folder 0700) before any byte of the token lands."""
    path = path or config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # TOML basic strings accept JSON's escapes, so json.dumps quotes any URL or token safely.
    text = f"url = {json.dumps(url)}\ntoken = {json.dumps(token)}\n"
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # an older file's mode, or a umask, must not widen it
        file.write(text)
    tmp.replace(path)
    return path


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"the portal URL must start with http:// or https://, not {url!r}")
    return url


def settings_load() -> Settings:
    """The portal and token to use: each from the environment if set, else from the file."""
    stored = config_read()
    url = os.environ.get(URL_ENV) or stored.get("url")
    token = os.environ.get(TOKEN_ENV) or stored.get("token")
    if not url or not token:
        raise ConfigError(f"not logged in: run `trainyard login`, or set {URL_ENV} and {TOKEN_ENV}")
    return Settings(url=normalise_url(url), token=token)
