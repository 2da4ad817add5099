"""Lazy package exports (PEP 562): a package `__init__` names what it exports and from which submodule, and the
submodule is imported on first access — so importing a torch-free submodule (the parameter classes that the
configuration check reads) never imports the torch-heavy rest of the package (docs/design.md §1)."""
from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]):
    """(`__getattr__`, `__dir__`, `__all__`) for the package `package` exporting `exports` ({submodule: names}).

    `package.<name>` imports `package.<submodule>` on first access and caches the value in the package; any other
    public attribute is tried as a submodule (`package.<module>` keeps working without an explicit import).
    Unknown names raise AttributeError."""
    where = {name: module for module, names in exports.items() for name in names}
    names = [name for group in exports.values() for name in group]

    def __getattr__(name: str):
        if name in where:
            value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
            setattr(sys.modules[package], name, value)
            return value
        if not name.startswith("_"):
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as err:
                if err.name != f"{package}.{name}":
                    raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__, names
