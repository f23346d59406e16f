"""Optional dependencies: a feature whose package is not installed is a one-line user error,
raised before any model is loaded (``pip install 'wagle[EXTRA]'`` or the package itself)."""

from __future__ import annotations

from importlib.util import find_spec

from wagle.errors import WagleError


def require(module: str, feature: str, install: str) -> None:
    """Raise a ``WagleError`` naming ``install`` unless ``module`` can be imported."""
    if find_spec(module) is None:
        raise WagleError(f"{feature} needs the {module} package: {install}")
