"""The command line's one error type (its own module so the subcommands need not import cli/__init__)."""
from __future__ import annotations


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""
