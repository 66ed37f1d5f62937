"""Token scopes (``repository:NAME:pull,push``) each call names for the auth flow."""

from __future__ import annotations

from collections.abc import Iterable

CATALOG_SCOPE = "registry:catalog:*"


def repository_scope(repository: str, *actions: str) -> str:
    """``repository:NAME:pull,push`` — the token scope for actions on a repository."""
    return f"repository:{repository}:{','.join(actions)}"


def pull_scope(repository: str) -> tuple[str, ...]:
    return (repository_scope(repository, "pull"),)


def push_scope(repository: str) -> tuple[str, ...]:
    return (repository_scope(repository, "pull", "push"),)


def delete_scope(repository: str) -> tuple[str, ...]:
    return (repository_scope(repository, "delete"),)


def merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Merge scopes on the same resource: ``a:pull`` + ``a:push`` -> ``a:pull,push``."""
    merged: dict[str, list[str]] = {}
    for scope in scopes:
        resource, sep, actions = scope.rpartition(":")
        if not sep or not resource:
            continue
        bucket = merged.setdefault(resource, [])
        bucket.extend(a for a in actions.split(",") if a and a not in bucket)
    return tuple(f"{resource}:{','.join(sorted(actions))}"
                 for resource, actions in sorted(merged.items()))
