"""Registry of restorers by stable snake_case name (timm-style decorator + glob listing)."""
from __future__ import annotations

import fnmatch
import importlib
from typing import Any, Callable, TypeVar

from archtool.errors import UnknownNameError

_RESTORERS: dict[str, Callable[..., Any]] = {}
_INSTANCES: dict[tuple[str, str], Any] = {}
T = TypeVar("T")

# Modules that register restorers when imported. Each later issue adds its module here.
_RESTORER_MODULES: tuple[str, ...] = ("archtool.restore.opgan", "archtool.restore.bwe", "archtool.restore.enhance", "archtool.restore.inpaint",
                                     "archtool.restore.declick", "archtool.restore.decrackle", "archtool.restore.dehum",
                                     "archtool.restore.rumble", "archtool.restore.denoise", "archtool.restore.declip",
                                     "archtool.restore.dereverb", "archtool.restore.diffusion")


def register_restorer(name: str) -> Callable[[T], T]:
    """Class decorator registering a restorer factory under ``name`` (unique)."""

    def deco(cls: T) -> T:
        if name in _RESTORERS and _RESTORERS[name] is not cls:
            raise ValueError(f"restorer {name!r} is already registered")
        _RESTORERS[name] = cls  # type: ignore[assignment]
        return cls

    return deco


def _load_all() -> None:
    for mod in _RESTORER_MODULES:
        importlib.import_module(mod)


def list_restorers(pattern: str = "*") -> list[str]:
    """Names of registered restorers matching a glob pattern, sorted."""
    _load_all()
    return sorted(n for n in _RESTORERS if fnmatch.fnmatch(n, pattern))


def restorer_class(name: str) -> Any:
    """The registered class (factory) for ``name``, without instantiating it."""
    _load_all()
    if name not in _RESTORERS:
        raise UnknownNameError("restorer", name, list(_RESTORERS))
    return _RESTORERS[name]


def get_restorer(name: str, **config: Any) -> Any:
    """An instance of restorer ``name``; cached per worker process so models load once."""
    _load_all()
    if name not in _RESTORERS:
        raise UnknownNameError("restorer", name, list(_RESTORERS))
    key = (name, repr(sorted(config.items())))
    if key not in _INSTANCES:
        _INSTANCES[key] = _RESTORERS[name](**config)
    return _INSTANCES[key]
