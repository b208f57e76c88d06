"""Scheduling the ``hotels`` spider on scrapyd nodes, one job per node (docs/DEPLOY.md).

For each host: ask ``listjobs.json`` whether a ``hotels`` job is already pending or
running there (then skip it: one job per node drains the shared queue, a second
one would only compete for the same CPU and disk), else POST ``schedule.json``
with the host's settings. Every host gets a ``HostResult``; nothing raises for
one host's failure. Passwords never appear in a result or a report: a host is
named by its URL without user information, and settings that may carry
credentials are shown redacted.

HTTP goes through the standard library's urllib: no HTTP client package is needed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hotelimages.redisconn import redact_url

PROJECT = "hotelimages"
SPIDER = "hotels"
#: Seconds to wait for one scrapyd answer.
TIMEOUT = 15.0

_SETTING_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
#: Settings whose values are URLs that may hold a password; reports show them redacted.
_URL_SETTINGS = ("REDIS_URL",)


class HostsFileError(ValueError):
    """A line of a hosts file (or a NAME=VALUE argument) that cannot be used; says which and why."""


@dataclass(frozen=True)
class Credentials:
    """Basic-auth user name and password for a scrapyd."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Host:
    """One scrapyd: its base URL (no user information) and the settings its job gets."""

    url: str
    settings: tuple[tuple[str, str], ...] = ()
    credentials: Credentials | None = None

    @property
    def name(self) -> str:
        """How reports name the host (the URL, never a password)."""
        return self.url


@dataclass(frozen=True)
class HostResult:
    """What happened on one host: ``scheduled``, ``skipped`` or ``error``."""

    host: str
    status: str
    jobid: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "error"

    def line(self) -> str:
        """The one-line report of this host."""
        if self.status == "scheduled":
            return f"{self.host}: scheduled job {self.jobid}"
        if self.status == "skipped":
            return f"{self.host}: skipped: job {self.jobid} still {self.message}"
        return f"{self.host}: error: {self.message}"


# Parsing (pure)
def parse_setting(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` -> (NAME, VALUE); the name must look like a Scrapy setting."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not _SETTING_NAME.fullmatch(name):
        raise HostsFileError(f"expected NAME=VALUE with an upper-case setting name, got {text!r}")
    return name, value


def split_userinfo(url: str) -> tuple[str, Credentials | None]:
    """A scrapyd URL without its ``user:password@`` part, and that part; the URL ends with ``/``."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HostsFileError(f"not an http(s) URL of a scrapyd: {redact_url(url)!r}")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    clean = urllib.parse.urlunsplit((parts.scheme, host, path, "", ""))
    creds = None
    if parts.username is not None:
        creds = Credentials(urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
    return clean, creds


def parse_host_line(line: str) -> Host | None:
    """One hosts-file line: ``URL [NAME=VALUE ...]``; None for a blank or ``#`` comment line."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    fields = text.split()
    url, creds = split_userinfo(fields[0])
    return Host(url, tuple(parse_setting(f) for f in fields[1:]), creds)


def parse_hosts(text: str, source: str = "hosts file") -> list[Host]:
    """Every host of a hosts file; an error names the file and the line number."""
    hosts = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            host = parse_host_line(line)
        except HostsFileError as exc:
            raise HostsFileError(f"{source}:{number}: {exc}") from None
        if host:
            hosts.append(host)
    return hosts


def merged_settings(common: Iterable[tuple[str, str]], own: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The settings of one host's job: the common ones, then the host's own, which win."""
    out = dict(common)
    out.update(own)
    return out


def form_data(settings: Mapping[str, str], project: str = PROJECT, spider: str = SPIDER) -> list[tuple[str, str]]:
    """The fields of a ``schedule.json`` POST: project, spider and one ``setting=NAME=VALUE`` per setting."""
    return [("project", project), ("spider", spider), *(("setting", f"{k}={v}") for k, v in settings.items())]


def active_job(listjobs: Mapping[str, Any], spider: str = SPIDER) -> tuple[str, str] | None:
    """(job id, ``running``/``pending``) of a job of ``spider`` in a ``listjobs.json`` answer, else None."""
    for state in ("running", "pending"):
        for job in listjobs.get(state) or []:
            if job.get("spider") == spider:
                return str(job.get("id", "?")), state
    return None


def shown_settings(settings: Mapping[str, str]) -> dict[str, str]:
    """Settings fit for a report: URLs that may hold a password are redacted."""
    return {k: redact_url(v) if k in _URL_SETTINGS else v for k, v in settings.items()}


def describe(host: Host, common: Iterable[tuple[str, str]] = ()) -> str:
    """What would be scheduled on a host, passwords redacted (for ``--dry-run``)."""
    shown = shown_settings(merged_settings(common, host.settings))
    auth = f" as {host.credentials.username}" if host.credentials else ""
    return f"{host.name}{auth}: would schedule " + " ".join([SPIDER, *(f"-s {k}={v}" for k, v in shown.items())])


def setting_problems(hosts: Iterable[Host], common: Iterable[tuple[str, str]] = ()) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the settings every host's job would get: unknown names that look like ours.

    Checked before anything is sent (also for ``--dry-run``), as a node checks them at start:
    ``HOTELS_UNKNOWN_SETTINGS=warn`` in a host's settings makes its errors warnings.
    """
    from hotelimages.config import check_names  # noqa: PLC0415 - loads Scrapy's settings; only needed here

    common = tuple(common)
    errors: list[str] = []
    warnings: list[str] = []
    for host in hosts:
        bad, warn = check_names(merged_settings(common, host.settings))
        errors += [f"{host.name}: {m}" for m in bad]
        warnings += [f"{host.name}: {m}" for m in warn]
    return errors, warnings


def pick_credentials(host: Host, default: Credentials | None) -> Credentials | None:
    """A host's own user information wins over ``--user``/``--password`` or the environment."""
    return host.credentials or default


def resolve_credentials(user: str | None, password: str | None, environ: Mapping[str, str] = os.environ,
                        ask: Callable[[str], str] | None = None) -> Credentials | None:
    """Default credentials: --user/--password, else SCRAPYD_USERNAME/SCRAPYD_PASSWORD; ``ask`` prompts if set."""
    user = user or environ.get("SCRAPYD_USERNAME")
    if not user:
        return None
    if password is None:
        password = environ.get("SCRAPYD_PASSWORD", "")
        if not password and ask is not None:
            password = ask(user)
    return Credentials(user, password)


# Talking to scrapyd
#: (method, URL, form fields or None, credentials, timeout) -> parsed JSON answer; replaceable in tests.
Transport = Callable[[str, str, "list[tuple[str, str]] | None", "Credentials | None", float], dict]


class ScrapydError(Exception):
    """A scrapyd that did not answer, refused us, or answered ``status: error``."""


def http_json(method: str, url: str, fields: list[tuple[str, str]] | None, creds: Credentials | None,
              timeout: float = TIMEOUT) -> dict:
    """One request to scrapyd, its JSON answer; raises ScrapydError with a message fit to print."""
    data = urllib.parse.urlencode(fields).encode() if fields is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if creds is not None:
        token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise ScrapydError("401 unauthorized (check the user name and password)") from None
        raise ScrapydError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ScrapydError(f"unreachable ({reason})") from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise ScrapydError(f"not a JSON answer: {body[:120]!r}") from None
    if not isinstance(answer, dict):
        raise ScrapydError(f"unexpected answer: {answer!r:.120}")
    if answer.get("status") != "ok":
        raise ScrapydError(str(answer.get("message") or answer)[:300])
    return answer


def schedule_host(host: Host, common: Iterable[tuple[str, str]] = (), *, credentials: Credentials | None = None,
                  project: str = PROJECT, spider: str = SPIDER, timeout: float = TIMEOUT,
                  transport: Transport = http_json) -> HostResult:
    """Schedule one job on one host unless one is pending or running there."""
    creds = pick_credentials(host, credentials)
    query = urllib.parse.urlencode({"project": project})
    try:
        jobs = transport("GET", f"{host.url}listjobs.json?{query}", None, creds, timeout)
        active = active_job(jobs, spider)
        if active:
            return HostResult(host.name, "skipped", jobid=active[0], message=active[1])
        fields = form_data(merged_settings(common, host.settings), project, spider)
        answer = transport("POST", f"{host.url}schedule.json", fields, creds, timeout)
    except ScrapydError as exc:
        return HostResult(host.name, "error", message=str(exc))
    return HostResult(host.name, "scheduled", jobid=str(answer.get("jobid", "")))


def schedule_all(hosts: Iterable[Host], common: Iterable[tuple[str, str]] = (), **kwargs: Any) -> list[HostResult]:
    """``schedule_host`` for every host, in order; one result each."""
    common = tuple(common)
    return [schedule_host(host, common, **kwargs) for host in hosts]
