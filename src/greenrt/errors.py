"""Exception types. Every error greenrt raises on purpose is a GreenrtError subclass.

The CLI maps any GreenrtError to exit code 2 and prints only its message; anything else is a bug.
"""

from __future__ import annotations


class GreenrtError(Exception):
    """Base class: a problem with the user's model, input or environment, with a message saying what to do."""


class ModelLoadError(GreenrtError):
    """The file is missing, truncated, not ONNX, or its external data cannot be found."""


class UnsupportedModelError(GreenrtError):
    """The model uses ops, domains, opsets or dtypes greenrt does not implement.

    ``problems`` lists every offending node at once, like a parser's error list.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class InvalidInputError(GreenrtError):
    """A run-time input has the wrong name, rank, shape or dtype."""


class ExecutionError(GreenrtError):
    """A node failed while running; the message names the node and its op."""
