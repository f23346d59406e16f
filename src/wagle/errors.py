"""The one exception type that means "the user asked for something wrong"."""


class WagleError(Exception):
    """A user error: the CLI prints its message on one line and exits non-zero, no traceback."""
