"""The base of every error a user can fix: the CLI prints its message, never a traceback."""


class VitrineError(Exception):
    """A failure with a message that says what went wrong and what to do about it."""
