"""Start the hotels spider on scrapyd nodes, one job per node; a node already running one is skipped.

    hotelimages schedule http://pc12:6800 http://pc13:6800 -s REDIS_URL=redis://queue:6379/0
    hotelimages schedule --hosts hosts.txt --user ops        # password from SCRAPYD_PASSWORD

A hosts file has one scrapyd per line, ``URL [NAME=VALUE ...]``, ``#`` starts a comment:

    http://10.0.0.12:6800  NODE_ID=pc12 IMAGES_STORE=D:/image
    https://ops:secret@10.0.0.13:6800  NODE_ID=pc13

Settings given with -s go to every host; a host's own settings win. Credentials: the URL's
``user:password@`` part, else --user/--password, else SCRAPYD_USERNAME/SCRAPYD_PASSWORD.
Prints one line per host (scheduled job id, skipped, or error) and exits 1 if any host failed.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from hotelimages import scrapyd_jobs
from hotelimages.commands import UsageError
from hotelimages.textfiles import TextFileError, read_text

OPTIONS: tuple[str, ...] = ()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("urls", nargs="*", metavar="URL", help="scrapyd base URLs (http://host:6800)")
    parser.add_argument("--hosts", type=Path, metavar="FILE", help="a hosts file (one 'URL [NAME=VALUE ...]' a line)")
    parser.add_argument("-s", "--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for every host's job (repeatable)")
    parser.add_argument("--user", help="scrapyd user name (default: SCRAPYD_USERNAME)")
    parser.add_argument("--password", help="scrapyd password (default: SCRAPYD_PASSWORD; asked for on a "
                                           "terminal); visible in `ps`, prefer the variable")
    parser.add_argument("--project", default=scrapyd_jobs.PROJECT)
    parser.add_argument("--spider", default=scrapyd_jobs.SPIDER)
    parser.add_argument("--dry-run", action="store_true", help="print what each host would get; contact none")
    parser.add_argument("--timeout", type=float, default=scrapyd_jobs.TIMEOUT, help="seconds per request")


def run(args: argparse.Namespace) -> int:
    try:
        common = [scrapyd_jobs.parse_setting(s) for s in args.settings]
        hosts = [scrapyd_jobs.parse_host_line(url) for url in args.urls]
        if args.hosts:
            hosts += scrapyd_jobs.parse_hosts(read_text(args.hosts), str(args.hosts))
    except (scrapyd_jobs.HostsFileError, TextFileError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    hosts = [h for h in hosts if h]
    if not hosts:
        raise UsageError("no hosts: give URLs or --hosts FILE")

    errors, warnings = scrapyd_jobs.setting_problems(hosts, common)
    for message in warnings:
        print(f"warning: {message}", file=sys.stderr)
    if errors:
        for message in errors:
            print(f"schedule: {message}", file=sys.stderr)
        print("schedule: nothing sent", file=sys.stderr)
        return 2

    if args.dry_run:
        for host in hosts:
            print(scrapyd_jobs.describe(host, common))
        return 0
    ask = (lambda user: getpass.getpass(f"scrapyd password for {user}: ")) if sys.stdin.isatty() else None
    credentials = scrapyd_jobs.resolve_credentials(args.user, args.password, ask=ask)

    results = scrapyd_jobs.schedule_all(hosts, common, credentials=credentials, project=args.project,
                                        spider=args.spider, timeout=args.timeout)
    for result in results:
        print(result.line())
    failed = sum(not r.ok for r in results)
    if failed:
        print(f"{failed} of {len(results)} hosts failed", file=sys.stderr)
    return 1 if failed else 0
