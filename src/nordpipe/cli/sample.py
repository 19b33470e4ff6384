"""``nordpipe sample``."""

from __future__ import annotations

from typing import Annotated

import typer

from nordpipe.cli.app import app
from nordpipe.cli.common import console


@app.command("sample")
def sample_command(
    root: Annotated[str, typer.Argument(help="Folder to write raw/, datasets/, blocklist.txt and manifest.json into.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same bytes.")] = 42,
    scale: Annotated[float, typer.Option("--scale", min=0.01, help="Multiply document counts (1.0 is ~1,500 documents).")] = 1.0,
    files: Annotated[int, typer.Option("--files", min=1, help="Split the forum, web and wiki dumps into this many files and the letters into this many folders (for parallel reading of large samples); the documents stay the same.")] = 1,
) -> None:
    """Write seeded sample raw dumps of five Nordic datasets in five raw formats.

    They carry what later stages must find: menus and cookie banners, repeated lines,
    near-duplicate documents, spam and blocked URLs, and personal data.
    """
    from nordpipe.sample import generate_sample

    manifest = generate_sample(root, seed=seed, scale=scale, files=files)
    counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
    console.print(f"sample written to {root}: {counts}", highlight=False)
