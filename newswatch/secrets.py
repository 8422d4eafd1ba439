"""Secrets come only from the environment and never show in reprs, logs or dumps.

Config files name an environment variable (`secret_env: NEWSWATCH_SLACK_SECRET`); the value
is read once, at load, into a `Secret` whose str() and repr() are `***`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from newswatch.errors import NewswatchError

MASK = "***"


class MissingSecretError(NewswatchError):
    """The environment variable that should hold a secret is not set (the message names it, not the value)."""

    def __init__(self, env_name: str, purpose: str):
        self.env_name = env_name
        super().__init__(f"environment variable {env_name} is not set ({purpose})")


class Secret:
    """A secret value; only `reveal()` gives the text."""

    __slots__ = ("_value", "env_name")

    def __init__(self, value: str, env_name: str = ""):
        self._value = value
        self.env_name = env_name

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.env_name or '?'}={MASK})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def secret_from_env(env_name: str, purpose: str, environ: Mapping[str, str] | None = None) -> Secret:
    """Read a secret from the environment, or raise MissingSecretError naming the variable."""
    env = os.environ if environ is None else environ
    value = env.get(env_name)
    if not value:
        raise MissingSecretError(env_name, purpose)
    return Secret(value, env_name)


def redact(text: str, secrets: list[Secret]) -> str:
    """Replace every secret's value in `text` by the mask (a last line of defence for error texts)."""
    for secret in secrets:
        value = secret.reveal()
        if value:
            text = text.replace(value, MASK)
    return text
