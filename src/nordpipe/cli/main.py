"""Entry point of the ``nordpipe`` console script."""

import importlib
import sys

from nordpipe.cli.app import app

# Each module attaches its commands to the apps in nordpipe.cli.app.
COMMAND_MODULES = (
    "ingest",
    "validate",
    "sample",
    "quality",
    "urls",
    "lines",
    "minhash",
    "pii",
    "tokenize",
    "pipeline",
    "export",
    "stages",
    "state",
)

for _name in COMMAND_MODULES:
    try:
        importlib.import_module(f"nordpipe.cli.{_name}")
    except ModuleNotFoundError as _err:  # a command module not written yet
        if _err.name != f"nordpipe.cli.{_name}":
            raise


def main() -> None:
    """Run the CLI; typer maps usage errors to exit code 2, RunError to 1."""
    sys.exit(app())


if __name__ == "__main__":
    main()
