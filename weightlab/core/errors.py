"""User-facing errors.

Every error a user can cause (a bad file, recipe or held-out set) is raised as a
:class:`WeightLabError`. Its message names the file (or recipe step) and says
what is wrong and what was received, so the GUI can show it in a dialog and the
command line can print it on one line without a traceback.
"""

from __future__ import annotations

import os


class WeightLabError(Exception):
    """An error caused by user input; safe to show to the user as is.

    Parameters
    ----------
    message:
        What is wrong, ending with what was received where that helps.
    path:
        The file (or folder) the error is about, if any; it is prefixed to the
        message.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None):
        self.message = message
        self.path = os.fspath(path) if path is not None else None
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class FormatError(WeightLabError):
    """A file cannot be read (or written) as a model of a supported format."""


class UnsafeFileError(FormatError):
    """A file contains something WeightLab refuses to read (links, shape bombs...)."""


class RecipeError(WeightLabError):
    """A recipe (or a single edit) is malformed or does not fit the model."""


class DataError(WeightLabError):
    """A held-out set is malformed or does not fit the model."""


class EngineError(WeightLabError):
    """The evaluation engine failed (model cannot be built, worker crashed...)."""
