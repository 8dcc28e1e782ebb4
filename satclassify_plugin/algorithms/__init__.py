"""One thin QgsProcessingAlgorithm per tool.

Every module in this package that defines subclasses of :class:`base.SatClassifyAlgorithm`
is picked up by the provider: adding a tool means adding a module, nothing else.
"""
import importlib
import inspect
import pkgutil


def algorithm_classes():
    from .base import SatClassifyAlgorithm

    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (issubclass(obj, SatClassifyAlgorithm) and obj is not SatClassifyAlgorithm
                    and obj.__module__ == module.__name__ and not inspect.isabstract(obj)
                    and getattr(obj, "ALGORITHM_ID", None)):
                found.append(obj)
    return found
