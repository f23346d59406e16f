"""The unlearning methods, one module each; importing this package imports every module in
it, and each registers itself in ``METHODS`` (adding a method is adding a file here and its
options in ``wagle.unlearning.options``)."""

import importlib
import pkgutil

__all__ = sorted(m.name for m in pkgutil.iter_modules(__path__))
for _name in __all__:
    importlib.import_module(f"{__name__}.{_name}")
