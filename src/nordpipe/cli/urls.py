"""``nordpipe filter urls``, ``nordpipe robots fetch`` and ``nordpipe blocklists update``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from nordpipe.cli.app import blocklists_app, filter_app, robots_app
from nordpipe.cli.common import (
    RUN_OPTIONS,
    InputArg,
    JsonOpt,
    OutputArg,
    err_console,
    finish,
    stage_command,
    with_run_options,
)
from nordpipe.runner import RunOptions

CacheOpt = Annotated[str, typer.Option("--cache", help="SQLite consent cache (written by robots fetch).")]
AgentOpt = Annotated[list[str] | None, typer.Option("--user-agent", help="AI user agent to check in robots.txt; repeat for several [default: the 14 agents of REFERENCE §6].")]


def parse_duration(text: str, option: str = "--max-age") -> float:
    """``90``, ``30s``, ``15m``, ``24h``, ``7d`` -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration like 3600, 30m, 24h or 7d", param_hint=option)
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


@filter_app.command("urls")
@stage_command
@with_run_options()
def filter_urls_command(
    input_path: InputArg,
    output_path: OutputArg,
    blocklist: Annotated[list[str] | None, typer.Option("--blocklist", help="Extra list file (domains, hosts-file lines, ||domain^ rules or URLs); repeatable.")] = None,
    allowlist: Annotated[list[str] | None, typer.Option("--allowlist", help="Domains never removed by a URL rule (same formats); repeatable.")] = None,
    category: Annotated[list[str] | None, typer.Option("--category", help="Use only these categories of the shipped lists (nordpipe/data/blocklists) and the store; an unknown one is an error; repeatable [default: all].")] = None,
    store: Annotated[str | None, typer.Option("--store", help="Store of downloaded lists [default: ~/.local/share/nordpipe/blocklists].")] = None,
    no_project_lists: Annotated[bool, typer.Option("--no-project-lists", help="Skip the shipped lists and the store.")] = False,
    no_datatrove_list: Annotated[bool, typer.Option("--no-datatrove-list", help="Skip datatrove's bundled UT1 adult list (4.5M domains, category adult) and its banned words.")] = False,
    no_banned_words: Annotated[bool, typer.Option("--no-banned-words", help="Skip datatrove's banned/soft/sub-word rules.")] = False,
    no_nordic_exceptions: Annotated[bool, typer.Option("--no-nordic-exceptions", help="No Nordic exceptions: apply banned words to Nordic hosts as elsewhere, and drop the allowlist of Nordic news and public sites.")] = False,
    datatrove_compatible: Annotated[bool, typer.Option("--datatrove-compatible", help="Decide exactly as datatrove's URLFilter (registered domain + host only, exact URL strings, no Nordic exceptions).")] = False,
    soft_word_threshold: Annotated[int, typer.Option("--soft-word-threshold", min=1, help="Soft-listed words that remove a URL.")] = 2,
    require_url: Annotated[bool, typer.Option("--require-url", help="Remove documents without metadata.url (default: they pass).")] = False,
    consent_cache: Annotated[str | None, typer.Option("--consent-cache", help="Also remove documents of sites that opt out of AI training, from this robots fetch cache.")] = None,
    user_agent: AgentOpt = None,
    consent_scope: Annotated[str, typer.Option("--consent-scope", help="domain: a site that shuts an AI agent out of / loses every page; path: only disallowed pages.")] = "domain",
    no_ai_txt: Annotated[bool, typer.Option("--no-ai-txt", help="Ignore ai.txt.")] = False,
    no_tdmrep: Annotated[bool, typer.Option("--no-tdmrep", help="Ignore tdmrep.json.")] = False,
    missing_consent: Annotated[str, typer.Option("--missing-consent", help="Hosts absent from the cache: keep or remove.")] = "keep",
    consent_unknown: Annotated[str | None, typer.Option("--consent-unknown", help="Documents whose site's consent is unknown (robots fetch got no answer: offline, DNS, timeout, 5xx), keep (marked in metadata.nordpipe.consent) or remove (reason consent:unknown:SIGNAL@DATE) [default: keep, and a cache holding only failures for the input's hosts is refused].")] = None,
    options: RunOptions = RUN_OPTIONS,
    as_json: JsonOpt = False,
) -> None:
    """Remove documents by metadata.url: blocklisted domains and URLs, banned words, and (with
    --consent-cache) sites that refuse AI training in robots.txt, ai.txt or tdmrep.json (or
    answer 401/403 for robots.txt).

    Lists: UT1 categories shipped with nordpipe (gambling, phishing, malware, scam; see
    nordpipe/data/blocklists/README.md), datatrove's bundled UT1 adult list (category adult),
    lists fetched by `nordpipe blocklists update`, --blocklist files. Nordic news and public
    sites (nordic_allowlist.txt) are never removed by a URL rule.

    Reasons: urls:blocklist(<category>), urls:url_list(<category>), urls:banned_word,
    urls:soft_banned_words, urls:banned_subword, urls:no_url, consent:<signal>@<snapshot date>,
    consent:unknown:<signal>@<date> (with --consent-unknown remove).

    Consent is unknown for a site whose files robots fetch could not get (offline, DNS, timeout,
    5xx, 429): such documents are kept and marked by default. When the cache holds nothing but
    failures for the input's hosts, the command refuses to run (exit 1) unless --consent-unknown
    is given.

    Example: nordpipe filter urls data/cc data/cc-urls --consent-cache consent.sqlite --keep-removed
    """
    from nordpipe.urls import run_urls

    if consent_scope not in ("domain", "path"):
        raise typer.BadParameter("use domain or path", param_hint="--consent-scope")
    if missing_consent not in ("keep", "remove"):
        raise typer.BadParameter("use keep or remove", param_hint="--missing-consent")
    if consent_unknown not in (None, "keep", "remove"):
        raise typer.BadParameter("use keep or remove", param_hint="--consent-unknown")
    stats = run_urls(
        input_path, output_path, options, blocklists=blocklist or [], allowlists=allowlist or [], categories=category,
        store=store, project_lists=not no_project_lists, datatrove_list=not no_datatrove_list,
        banned_words=not no_banned_words, nordic_exceptions=not no_nordic_exceptions,
        datatrove_compatible=datatrove_compatible, soft_word_threshold=soft_word_threshold, require_url=require_url,
        consent_cache=consent_cache, user_agents=user_agent, consent_scope=consent_scope, ai_txt=not no_ai_txt,
        tdmrep=not no_tdmrep, missing_consent=missing_consent, consent_unknown=consent_unknown,
    )
    finish(stats, options.strict, as_json)


@robots_app.command("fetch")
@stage_command
def robots_fetch_command(
    input_path: InputArg,
    cache: CacheOpt,
    max_age: Annotated[str, typer.Option("--max-age", help="Refetch entries older than this (seconds, or 30m, 24h, 7d).")] = "24h",
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight at once.")] = 64,
    per_host: Annotated[int, typer.Option("--per-host", min=1, help="Requests in flight at once to one host.")] = 1,
    timeout: Annotated[float, typer.Option("--timeout", min=0.01, help="Seconds one attempt may take.")] = 10.0,
    retries: Annotated[int, typer.Option("--retries", min=0, help="Retries after a timeout, connection failure, 5xx or 429.")] = 2,
    backoff: Annotated[float, typer.Option("--backoff", min=0.0, help="Seconds before the first retry (doubling).")] = 1.0,
    retry_after: Annotated[str, typer.Option("--retry-after", help="A file that got no answer (offline, DNS, timeout, 5xx, 429) is fetched again by a run after this long (seconds, or 10m, 1h), doubling per consecutive failure, at most --max-age.")] = "10m",
    resource: Annotated[list[str] | None, typer.Option("--resource", help="robots.txt, ai.txt, tdmrep.json; repeatable [default: all three].")] = None,
    allow_private: Annotated[bool, typer.Option("--allow-private", help="Allow hosts that resolve to loopback/private/link-local addresses (tests, intranets).")] = False,
    allow_network: Annotated[list[str] | None, typer.Option("--allow-network", help="Allow this address range (CIDR) even if private; repeatable.")] = None,
    resolve: Annotated[list[str] | None, typer.Option("--resolve", help="HOST:ADDRESS, use ADDRESS for HOST (*.suffix matches subdomains); repeatable.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch robots.txt, ai.txt and /.well-known/tdmrep.json of every host in INPUT into a SQLite cache.

    INPUT: documents (metadata.url is read) or a .txt file of URLs or host names. Answers
    fetched within --max-age are skipped, so a daily cron run refetches only what went stale.
    A file that got no answer (DNS failure, connection refused, timeout, 5xx, 429) is not
    cached as fresh: it counts as failed, its consent is unknown, and a later run retries it
    (after --retry-after); an earlier answer for it stays in use meanwhile. 401/403 for
    robots.txt is a refusal; other 4xx mean no file (allowed). Hosts resolving to non-public
    addresses are refused unless --allow-private.

    Summary: fetched (answers), failed (no answer), refused (address policy), fresh_skipped,
    retry_waiting. Exit 1 when files were due and not one answer came (offline?).

    Example: nordpipe robots fetch data/cc --cache consent.sqlite --max-age 24h
    """
    from nordpipe.robots import RESOURCES, FetchOptions, collect_origins, fetch_consent, iter_input_urls, parse_resolve

    resources = resource or list(RESOURCES)
    unknown = [r for r in resources if r not in RESOURCES]
    if unknown:
        raise typer.BadParameter(f"unknown resource {unknown[0]!r} (use {', '.join(RESOURCES)})", param_hint="--resource")
    try:
        overrides = parse_resolve(resolve or [])
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--resolve") from err
    if not Path(input_path).exists() and "://" not in input_path:
        raise FileNotFoundError(f"{input_path} does not exist")
    origins, bad = collect_origins(iter_input_urls(input_path))
    options = FetchOptions(max_age=parse_duration(max_age), concurrency=concurrency, per_host=per_host,
                           timeout=timeout, retries=retries, backoff=backoff,
                           retry_after=parse_duration(retry_after, "--retry-after"), resources=tuple(resources),
                           allow_private=allow_private, allow_networks=tuple(allow_network or ()), resolve=overrides)
    summary = fetch_consent(origins, cache, options)
    summary.bad_urls = bad
    result = summary.as_dict()
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        for key, value in result.items():
            if key == "outcomes":
                for outcome, count in value.items():
                    sys.stdout.write(f"robots-fetch\t{outcome}\t{count}\n")
            else:
                sys.stdout.write(f"robots-fetch\t{key}\t{value}\n")
    line = summary.line(options.retry_after)
    if summary.nothing_fetched:
        err_console.print(f"[bold red]nordpipe: error:[/] nothing could be fetched ({line}); cache {cache} holds no "
                          "answer for them: check the network (offline?) and run robots fetch again", highlight=False,
                          soft_wrap=True)
        raise typer.Exit(1)
    err_console.print(f"robots fetch: {line}", highlight=False, soft_wrap=True)


@blocklists_app.command("update")
@stage_command
def blocklists_update_command(
    sources: Annotated[str | None, typer.Option("--sources", help="Sources file (TOML, [[source]] name/category/url) [default: the shipped nordpipe/data/blocklists/sources.toml].")] = None,
    store: Annotated[str | None, typer.Option("--store", help="Where lists go [default: $NORDPIPE_BLOCKLIST_STORE or ~/.local/share/nordpipe/blocklists].")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Update only this source name or category; repeatable.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per download.")] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Download the public category lists named in the sources file into the local store, with
    SHA-256 checksums and the time of the download in <store>/manifest.json. The shipped sources
    fetch the current UT1 categories behind the shipped lists (a store list replaces the shipped
    list of the same name) plus URLhaus and OpenPhish. Each list is replaced atomically; a failed
    download keeps the previous copy and makes the exit code 1 (offline: a clear error, nothing
    changed).
    """
    from nordpipe.blocklists import SOURCES_NAME, default_store, read_sources, shipped_file, update_blocklists

    sources_path = Path(sources) if sources else shipped_file(SOURCES_NAME)
    if not sources_path.exists():
        raise FileNotFoundError(f"sources file {sources_path} does not exist")
    results = update_blocklists(read_sources(sources_path), store or default_store(), timeout=timeout, only=only)
    if as_json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    else:
        for item in results:
            extra = item.get("error") or f"entries={item.get('entries')} sha256={item.get('sha256')}"
            sys.stdout.write(f"blocklists-update\t{item['list']}\t{item['status']}\t{extra}\n")
    failed = [r for r in results if r["status"] == "failed"]
    if failed:
        where = store or default_store()
        if all(r.get("unreachable") for r in failed) and len(failed) == len(results):
            message = (f"no list server could be reached (offline? DNS, connection refused or timeout): "
                       f"{failed[0]['list']}: {failed[0]['error']}. The previous lists in {where} are kept; run "
                       "blocklists update again when the network is up")
        else:
            message = (f"{len(failed)} of {len(results)} lists failed to download "
                       f"({', '.join(r['list'] for r in failed)}); their previous copies in {where} are kept")
        err_console.print(f"nordpipe: error: {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
