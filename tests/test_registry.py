"""One registry helper behind every pluggable thing: unknown names list the choices, aliases resolve, lazy entries
import only when chosen."""
from __future__ import annotations

import sys

import pytest

from pipeline.errors import UserError
from pipeline.registry import Lazy, Registry, UnknownChoice


def test_an_unknown_name_lists_every_choice():
    reg = Registry("widget", {"a": 1, "b": 2}, aliases={"default": "a"})
    with pytest.raises(UnknownChoice, match=r"unknown widget 'c'; choose one of: a, b, default"):
        reg["c"]


def test_an_alias_resolves_to_its_entry():
    reg = Registry("widget", {"a": 1, "b": 2}, aliases={"default": "b"})
    assert reg.resolve("default") == "b" and reg["default"] == 2 and list(reg) == ["a", "b"]


def test_a_lazy_entry_is_imported_on_first_use_only():
    reg = Registry("module", {"colorsys": Lazy("colorsys:rgb_to_hsv")})
    sys.modules.pop("colorsys", None)
    assert "colorsys" not in sys.modules
    assert reg["colorsys"](1.0, 0.0, 0.0) == (0.0, 1.0, 1.0) and "colorsys" in sys.modules


def test_a_missing_lazy_entry_says_it_is_not_installed():
    reg = Registry("engine", {"fast": Lazy("no_such_module_here")}, missing_hint="pip install it")
    with pytest.raises(UserError, match="engine 'fast' is not installed .*pip install it"):
        reg["fast"]


def test_check_is_a_value_error_for_config_validators():
    with pytest.raises(ValueError, match="choose one of"):
        Registry("widget", {"a": 1}).check("b")


@pytest.mark.parametrize("registry, kind", [
    ("pipeline.generate.backends:BACKENDS", "generation backend"), ("sandbox:BACKENDS", "sandbox backend"),
    ("pipeline.forecast.methods:METHODS", "fit method"), ("pipeline.forecast.laws:LAWS", "law"),
    ("pipeline.cli:COMMAND_MODULES", "command module"),
])
def test_every_pluggable_thing_is_a_registry(registry, kind):
    import importlib

    module, _, name = registry.partition(":")
    found = getattr(importlib.import_module(module), name)
    assert isinstance(found, Registry) and found.kind == kind


def test_an_unknown_sandbox_is_refused_as_unavailable_with_the_choices():
    import sandbox

    with pytest.raises(sandbox.SandboxUnavailable, match="choose one of: auto, docker, bwrap, unsafe-no-isolation"):
        sandbox.open_backend("chroot")
