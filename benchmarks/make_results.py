"""Assemble benchmarks/RESULTS.md: the summary below, then every benchmarks/results/*.md in full."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["ingest", "ingest_language", "extract", "urls", "blocklists", "quality", "quality_stage", "profile_quality", "prose",
         "langid", "lines", "minhash", "scale", "pii", "publish", "tokenize", "export", "pipeline", "profile", "contract"]


def main() -> None:
    summary = (HERE / "results" / "SUMMARY.md").read_text(encoding="utf-8")
    parts = [summary.rstrip(), ""]
    for name in ORDER:
        path = HERE / "results" / f"{name}.md"
        if path.exists():
            parts += ["", "---", "", path.read_text(encoding="utf-8").rstrip(), ""]
    (HERE / "RESULTS.md").write_text("\n".join(parts) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
