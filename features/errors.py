"""Errors Radar shows to a user as a message, never as a traceback."""

from __future__ import annotations

from pathlib import Path


class RadarInputError(ValueError):
    """An input (a data file, a mapping file, a folder, a database) that cannot be used at all.

    The message names the file and the problem in plain words, and never holds personal
    data, so the CLI can print it as it is.
    """

    def __init__(self, problem: str, path: Path | str | None = None) -> None:
        # Text is kept as given: a database URL or "URL, table leads" is not a path, and
        # Path() would fold the URL's "//".
        self.path = path
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)
