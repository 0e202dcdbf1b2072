"""The trait registry: every trait module registers its class here by name.

Adding a trait is one new module in this package: every module here except `base` is imported once.
"""

from __future__ import annotations

import importlib
import pkgutil

from functions.core.traits.base import COMMAND_PREFIX, TRAIT_PREFIX, Command, Trait

_BY_NAME: dict[str, Trait] = {}
_BY_COMMAND: dict[str, Trait] = {}


def register(cls: type[Trait]) -> type[Trait]:
    instance = cls()
    for key in (cls.name, cls.full_name()):
        if key in _BY_NAME:
            raise ValueError(f"trait {key} registered twice")
        _BY_NAME[key] = instance
    for command_name in cls.commands:
        if command_name in _BY_COMMAND:
            raise ValueError(f"command {command_name} belongs to two traits")
        _BY_COMMAND[command_name] = instance
    return cls


for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def get(name: str) -> Trait | None:
    """A trait by its short (`OnOff`) or full (`action.devices.traits.OnOff`) name."""
    return _BY_NAME.get(name)


def for_command(command_name: str) -> Trait | None:
    return _BY_COMMAND.get(command_name)


def all_traits() -> list[Trait]:
    return sorted({id(t): t for t in _BY_NAME.values()}.values(), key=lambda t: t.name)


__all__ = [
    "COMMAND_PREFIX",
    "TRAIT_PREFIX",
    "Command",
    "Trait",
    "all_traits",
    "for_command",
    "get",
    "register",
]
