"""Where credentials come from: explicit > docker config ``auths`` > credential helpers.

Mirrors the docker CLI's files: ``$DOCKER_CONFIG/config.json`` or
``~/.docker/config.json``; ``auths`` entries carry base64 ``user:password`` in
``auth`` or an OAuth2 refresh token in ``identitytoken``; ``credHelpers`` (per
registry) and ``credsStore`` (default) name ``docker-credential-NAME`` programs.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .._errors import CredentialsError
from .._json import json_object
from ._hosts import is_docker_hub

#: Docker Hub's key in config files and for credential helpers.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HELPER_TIMEOUT = 30.0


@dataclass(frozen=True)
class Credentials:
    """What to authenticate with. Secrets never appear in ``repr``.

    ``identity_token`` is an OAuth2 refresh token (docker's ``identitytoken``),
    ``registry_token`` a bearer token used as it is.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    registry_token: str | None = field(default=None, repr=False)
    source: str = "anonymous"

    @property
    def anonymous(self) -> bool:
        """True when there is nothing to authenticate with: no user, no token."""
        return not (self.username or self.identity_token or self.registry_token)


def config_key(registry_url: str) -> str:
    """The key docker uses for this registry in config files and helpers."""
    host = urlsplit(registry_url).netloc.lower()
    return DOCKER_HUB_KEY if is_docker_hub(urlsplit(registry_url).hostname) else host


def docker_config_path() -> Path:
    directory = os.environ.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else Path.home() / ".docker/config.json"


def _normalise_key(key: str) -> str:
    """``https://host:5000/v1/`` and ``host:5000`` name the same registry."""
    if key == DOCKER_HUB_KEY:
        return key
    text = key if "://" in key else "//" + key
    host = urlsplit(text).netloc.lower()
    return DOCKER_HUB_KEY if is_docker_hub(host) else host


def resolve_credentials(
    registry_url: str,
    username: str | None = None,
    password: str | None = None,
    *,
    config_path: Path | None = None,
) -> Credentials:
    """Credentials for ``registry_url``: explicit, then docker config, then helpers."""
    if username is not None or password is not None:
        return Credentials(username=username or "", password=password, source="explicit")
    path = config_path or docker_config_path()
    try:
        config = json_object(path.read_bytes()) if path.is_file() else {}
    except OSError as exc:
        raise CredentialsError(f"cannot read docker config {path}: {type(exc).__name__}") from None
    if config is None:
        raise CredentialsError(f"docker config {path} is not a JSON object")
    key = config_key(registry_url)

    auths = config.get("auths") or {}
    helpers = config.get("credHelpers") or {}
    if not isinstance(auths, dict) or not isinstance(helpers, dict):
        raise CredentialsError(f"docker config {path}: 'auths' and 'credHelpers' must be "
                               "objects")
    entry = next((v for k, v in auths.items() if _normalise_key(str(k)) == key), None)
    found = _from_auths_entry(entry, path) if isinstance(entry, dict) else None
    if found:
        return found

    helper = next((v for k, v in helpers.items() if _normalise_key(str(k)) == key), None)
    helper = helper or config.get("credsStore")
    if isinstance(helper, str) and helper:
        return run_helper(helper, key)
    return Credentials()


def _from_auths_entry(entry: dict, path: Path) -> Credentials | None:
    if isinstance(entry.get("identitytoken"), str) and entry["identitytoken"]:
        return Credentials(username=entry.get("username") or None,
                           identity_token=entry["identitytoken"], source=f"config {path}")
    if isinstance(entry.get("registrytoken"), str) and entry["registrytoken"]:
        return Credentials(registry_token=entry["registrytoken"], source=f"config {path}")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, secret = base64.b64decode(auth, validate=True).decode().partition(":")
        except (binascii.Error, ValueError):  # not base64, not ASCII, not UTF-8
            sep = ""
        if not sep:
            raise CredentialsError(f"docker config {path}: an 'auth' entry is not base64 user:pw")
        return Credentials(username=user, password=secret, source=f"config {path}")
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(username=entry["username"], password=entry["password"],
                           source=f"config {path}")
    return None


def run_helper(name: str, server_url: str) -> Credentials:
    """Ask ``docker-credential-NAME get``; "credentials not found" means anonymous."""
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise CredentialsError(f"credential helper docker-credential-{name} is not on PATH")
    try:
        result = subprocess.run(
            [program, "get"], input=server_url.encode(), capture_output=True,
            timeout=_HELPER_TIMEOUT, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CredentialsError(
            f"credential helper docker-credential-{name} failed: {type(exc).__name__}"
        ) from None
    if result.returncode != 0:
        said = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
        if "credentials not found" in said.lower():
            return Credentials()
        # the helper's output is not echoed: it may hold what it was storing
        raise CredentialsError(
            f"credential helper docker-credential-{name} exited {result.returncode}"
        )
    try:
        answer = json_object(result.stdout) or {}
        user, secret = answer["Username"], answer["Secret"]
    except KeyError:
        raise CredentialsError(
            f"credential helper docker-credential-{name} gave no Username/Secret JSON"
        ) from None
    if not isinstance(user, str) or not isinstance(secret, str):
        raise CredentialsError(f"credential helper docker-credential-{name}: bad JSON types")
    source = f"helper {name}"
    if user == "<token>":  # docker's marker: the secret is an identity token
        return Credentials(identity_token=secret, source=source)
    return Credentials(username=user, password=secret, source=source)
