"""Where credentials may go: one origin (scheme, host, port) per configured URL, parsed once and strictly.

A URL that two parsers could read differently (userinfo, backslashes, whitespace, percent-escapes or other odd
characters in the host) is refused outright, and the host that is accepted is checked against the one the HTTP
layer itself (``requests``) would connect to. Plain ``http`` is accepted for loopback hosts only (the emulator).
Every request the connector sends is checked against the allowed origins before it leaves, and redirects are
never followed, so session headers, the login body or a bearer token never reach another host or scheme.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple
from urllib.parse import urlsplit

import requests

DEFAULT_PORTS = {"https": 443, "http": 80}
_AUTHORITY_ENDS = ("/", "?", "#", "\\")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[^/:\[\]]+|\[[^\]/]*\])(?::(?P<port>[0-9]{1,5}))?(?P<path>/[A-Za-z0-9._~/-]*)?"
)


class UnsafeUrl(ValueError):
    """The URL is not one the connector may send credentials to; the message says why."""


@dataclass(frozen=True)
class Origin:
    scheme: str  # "https" or "http", lower case
    host: str  # lower case; IPv6 without brackets
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{host}" + ("" if default else f":{self.port}")


def checked_url(url: str, key: str = "base_url") -> Tuple[str, Origin]:
    """``url`` normalised (lower-case scheme and host, no trailing slash) and its origin, or ``UnsafeUrl``.

    Accepts only ``scheme://host[:port][/path]`` with a DNS name, an IPv4 address or a bracketed IPv6 address,
    and a path of plain characters: no userinfo, query, fragment, backslash, whitespace or percent-escape.
    """
    if not isinstance(url, str):
        raise UnsafeUrl(f"{key} must be a string.")
    text = url.strip()
    match = _URL.fullmatch(text)
    if match is None:
        raise UnsafeUrl(
            f"{key} {url!r} is not a plain http(s) URL such as https://gateway.prod.bill.com/connect "
            "(no user name or password in it, no query, no fragment, no backslashes, spaces or escapes)."
        )
    scheme = match["scheme"].lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeUrl(f"{key} {url!r} must start with https:// (or http:// for a loopback test server).")
    raw_host = match["host"]
    if not (_HOST.fullmatch(raw_host) or _IPV6.fullmatch(raw_host)):
        raise UnsafeUrl(f"{key} {url!r} does not name a host the connector can check; use a plain host name.")
    host = raw_host.strip("[]").lower().rstrip(".")
    if raw_host.startswith("["):
        try:
            host = ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise UnsafeUrl(f"{key} {url!r} has an invalid IPv6 address.") from None
    port = int(match["port"]) if match["port"] else DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise UnsafeUrl(f"{key} {url!r} has an invalid port.")
    origin = Origin(scheme, host, port)
    if scheme == "http" and not is_loopback(host):
        raise UnsafeUrl(
            f"{key} {url!r} uses plain http to a host that is not loopback; BILL credentials are only sent "
            "over https (plain http is accepted for 127.0.0.1, ::1 and localhost only)."
        )
    path = (match["path"] or "").rstrip("/")
    normalised = f"{origin}{path}"
    if origin_of(normalised) != origin:  # the HTTP layer must read the same host, whatever it does to the text
        raise UnsafeUrl(f"{key} {url!r} is read differently by the HTTP library; use a plain host name.")
    return normalised, origin


def origin_of(url: str) -> Optional[Origin]:
    """The origin ``requests`` connects to for ``url`` (its own parsing and normalisation), or None."""
    try:
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        parts = urlsplit(prepared.url or "")
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None:
            return None
        host = parts.hostname.lower().rstrip(".")
        if ":" in host:
            host = ipaddress.IPv6Address(host).compressed
        return Origin(scheme, host, parts.port or DEFAULT_PORTS[scheme])
    except (ValueError, requests.RequestException):
        return None


def allowed(url: str, origins: Iterable[Origin]) -> bool:
    """True when ``url`` goes to one of ``origins`` (same scheme, host and port)."""
    target = _origin_of_head(url_head(url)) if "//" in url else origin_of(url)
    return target is not None and target in set(origins)


def url_head(url: str) -> str:
    """``url`` up to where its authority ends (the first ``/``, ``?``, ``#`` or backslash after ``//``): all that
    decides its origin, and the same for every page of a list, so its origin is worked out once."""
    if "//" not in url:
        return url
    start = url.index("//") + 2
    end = len(url)
    for stop in _AUTHORITY_ENDS:
        at = url.find(stop, start)
        if 0 <= at < end:
            end = at
    return url[:end]


@functools.lru_cache(maxsize=256)
def _origin_of_head(head: str) -> Optional[Origin]:
    return origin_of(head)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
