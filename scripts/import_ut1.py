"""Write the shipped UT1 lists (``src/nordpipe/data/blocklists/<category>/ut1-<ut1>.txt.gz``) from a
UT1 folder laid out as ``<ut1 category>/{domains,urls}`` (the olbat/ut1-blacklists mirror, or an
unpacked ``blacklists.tar.gz`` from Université Toulouse 1 Capitole).

    .venv/bin/python scripts/import_ut1.py ../shared/data/blocklists/ut1 --version "olbat/ut1-blacklists 804da92a (2026-08-17)"

Each file holds a comment header (source, version, licence), then the UT1 ``domains`` lines,
then the ``urls`` lines, unchanged. gzip with mtime 0, so the same input gives the same bytes.
The mapping is ``nordpipe.blocklists.UT1_CATEGORIES``; update the table in
``src/nordpipe/data/blocklists/README.md`` when it or the version changes.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from nordpipe.blocklists import UT1_CATEGORIES, read_list_file

TARGET = Path(__file__).resolve().parents[1] / "src" / "nordpipe" / "data" / "blocklists"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ut1", type=Path, help="UT1 folder: <ut1 category>/domains and /urls")
    parser.add_argument("--version", required=True, help="UT1 version written into each header")
    parser.add_argument("--target", type=Path, default=TARGET, help="lists folder [default: the shipped one]")
    args = parser.parse_args()
    for category, ut1_names in UT1_CATEGORIES.items():
        for ut1 in ut1_names:
            parts = [args.ut1 / ut1 / kind for kind in ("domains", "urls") if (args.ut1 / ut1 / kind).is_file()]
            if not parts:
                raise SystemExit(f"{args.ut1 / ut1}: neither domains nor urls")
            header = (
                f"# UT1 blacklists, category {ut1} ({' + '.join(p.name for p in parts)}), as nordpipe category {category}.\n"
                f"# Version: {args.version}.\n"
                "# (c) Fabrice Prigent, Universite Toulouse 1 Capitole; licence CC BY-SA 4.0:\n"
                "# see UT1-ATTRIBUTION.md and UT1-LICENSE.txt in this folder's parent. Unchanged lines.\n"
            )
            target = args.target / category / f"ut1-{ut1}.txt.gz"
            target.parent.mkdir(parents=True, exist_ok=True)
            body = b"".join(p.read_bytes().rstrip(b"\n") + b"\n" for p in parts)
            with open(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as out:
                out.write(header.encode("utf-8") + body)
            parsed = read_list_file(target, category)
            print(f"{target.relative_to(args.target)}\tdomains={len(parsed.domains)}\turls={len(parsed.urls)}"
                  f"\tskipped={parsed.skipped}\tbytes={target.stat().st_size}")


if __name__ == "__main__":
    main()
