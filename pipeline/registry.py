"""Named choices of one kind: generation backends, sandbox backends, fit methods, laws, commands.

A ``Registry`` maps each name a user may type to its entry; ``aliases`` are other names for an entry
("default" -> "stacked", "hf" -> "transformers"). An entry given as ``Lazy("module")`` or
``Lazy("module:attribute")`` is imported on first use (the entry-point pattern), so a backend's heavy imports
happen only when it is chosen. Every unknown name is an error that lists the valid choices.

Plumbing: imports nothing above ``pipeline.errors`` (the sandbox package uses it too).
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, Iterator, TypeVar

from pipeline.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Lazy:
    """An entry imported when first chosen: ``"module"`` or ``"module:attribute"``."""

    reference: str


class UnknownChoice(UserError, ValueError):
    """A name that is not one of a registry's choices; the message lists them (a ValueError for validators)."""


class Registry(Mapping, Generic[T]):
    """Name -> entry for one kind of pluggable thing; iterating gives the canonical names in order."""

    def __init__(self, kind: str, entries: dict[str, T | Lazy], *, aliases: dict[str, str] | None = None,
                 error: type[Exception] = UnknownChoice, missing_hint: str = ""):
        self.kind = kind
        self._entries = dict(entries)
        self._aliases = dict(aliases or {})
        self._error = error
        self._missing_hint = missing_hint
        unknown = sorted(set(self._aliases.values()) - set(self._entries))
        if unknown:
            raise ValueError(f"{kind} aliases point at unknown entries: {', '.join(unknown)}")

    def choices(self) -> tuple[str, ...]:
        """Every name a user may give: the entries in order, then the aliases."""
        return tuple(self._entries) + tuple(self._aliases)

    def unknown(self, name) -> str:
        return f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.choices())}"

    def check(self, name: str) -> str:
        """``name`` unchanged when it is a valid choice, else UnknownChoice (for pydantic field validators)."""
        if name not in self._aliases and name not in self._entries:
            raise UnknownChoice(self.unknown(name))
        return name

    def resolve(self, name: str) -> str:
        """The canonical name for ``name`` (an alias resolved); an unknown name raises the registry's error."""
        canonical = self._aliases.get(name, name)
        if canonical not in self._entries:
            raise self._error(self.unknown(name))
        return canonical

    def __getitem__(self, name: str) -> T:
        name = self.resolve(name)
        entry = self._entries[name]
        if isinstance(entry, Lazy):
            entry = self._entries[name] = self._load(name, entry.reference)
        return entry

    def _load(self, name: str, reference: str):
        module_name, _, attribute = reference.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UserError(f"{self.kind} '{name}' is not installed ({exc})"
                            + (f"; {self._missing_hint}" if self._missing_hint else "")) from None
        return getattr(module, attribute) if attribute else module

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.choices())})"
