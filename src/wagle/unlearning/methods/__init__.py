"""The unlearning methods; importing this package registers each one in ``METHODS``."""

from wagle.unlearning.methods import ga, graddiff, npo, po, rmu, simnpo

__all__ = ["ga", "graddiff", "npo", "po", "rmu", "simnpo"]
