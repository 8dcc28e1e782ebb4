"""One thin QgsProcessingAlgorithm per tool.

Every module in this package that defines subclasses of :class:`base.SatClassifyAlgorithm`
is picked up by the provider: adding a tool means adding a module, nothing else.

The modules that are no tool: :data:`SHARED_MODULES` (``base``: the algorithm base class and parameter helpers;
``styles``: layer post-processors; ``layers``: layer parameters -> file paths) and those whose name starts with
"_" (helpers shared by a family of tools, e.g. ``_sentinel2``). A tool module shares code through them or the core,
never by importing another tool module (tests/core/test_guardrail.py).
"""

import importlib
import inspect
import pkgutil

SHARED_MODULES = ("base", "styles", "layers")


def algorithm_classes():
    from .base import SatClassifyAlgorithm

    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in SHARED_MODULES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, SatClassifyAlgorithm)
                and obj is not SatClassifyAlgorithm
                and obj.__module__ == module.__name__
                and not inspect.isabstract(obj)
                and getattr(obj, "ALGORITHM_ID", None)
            ):
                found.append(obj)
    return found
