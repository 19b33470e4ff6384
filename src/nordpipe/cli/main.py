"""Entry point of the ``nordpipe`` console script.

Command modules are imported when their command is resolved, not here (``nordpipe.cli.app``:
``COMMANDS`` and ``LazyGroup``), so each call pays only for the command it runs.
"""

import sys

from nordpipe.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Run the CLI; typer maps usage errors to exit code 2, RunError to 1."""
    sys.exit(app())


if __name__ == "__main__":
    main()
