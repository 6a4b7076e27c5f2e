"""The `cycleml` command line: parses arguments, calls :class:`cycleml.Project`, prints.

One module per lifecycle stage registers its commands on the shared Typer app."""

from __future__ import annotations

import os
import sys

# isort: off  (the import order is the order of the commands in `cycleml --help`)
from . import (
    _clean,  # noqa: F401
    _define,  # noqa: F401  (importing a module registers its commands)
    _deploy,  # noqa: F401
    _experiment,  # noqa: F401
    _monitor,  # noqa: F401
    _prepare,  # noqa: F401
    _profile,  # noqa: F401
    _schedule,  # noqa: F401  (issue 6: `cycleml schedule run|list`)
    _sources,  # noqa: F401
    _suggest,  # noqa: F401
    _train,  # noqa: F401
)

# isort: on
from ._common import (
    INTERNAL_EXIT,
    _print_internal_error,
    app,
)

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as exc:
        sys.exit(exc.code)
    except BrokenPipeError:
        # stdout was closed early (`cycleml sources --json | head`): exit quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
    except Exception as exc:  # raised outside a command (option callbacks, typer itself)
        _print_internal_error(exc, "--json" in sys.argv[1:])
        sys.exit(INTERNAL_EXIT)
