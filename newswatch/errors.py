"""The project's exception tree. Every error newswatch raises on purpose is a NewswatchError.

    NewswatchError
     ├── ConfigError          one or more problems in a config file (each with file, line, column, key)
     ├── SchemaError          a Kafka record that is not a record we understand (bad JSON, unknown schema)
     └── BrokerError          the local Kafka broker could not be fetched, started or reached
"""

from __future__ import annotations

from dataclasses import dataclass


class NewswatchError(Exception):
    """Root of every error newswatch raises deliberately."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in one config file, with where it is."""

    file: str
    line: int | None
    column: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(NewswatchError):
    """A config file (or several) failed validation; `problems` lists every one found."""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, file: str, message: str, *, line: int | None = None,
               column: int | None = None, key: str = "") -> "ConfigError":
        return cls([ConfigProblem(file, line, column, key, message)])


class SchemaError(NewswatchError):
    """A record could not be decoded or carries a schema this reader does not accept."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class BrokerError(NewswatchError):
    """The local broker could not be fetched, started, stopped or reached; the message says what to do."""
