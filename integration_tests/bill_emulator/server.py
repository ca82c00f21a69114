"""A BILL v3 ("connect") API emulator on a real local HTTP server (standard library only).

See the package docstring for the public API. Everything here is thread-safe enough for a
ThreadingHTTPServer: data mutations take `self._lock`; records are immutable once stored (a change
replaces the row by a modified copy), so serving a page needs the lock only to fetch the cached
filtered+sorted row list.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import random
import secrets
import socket
import sys
import threading
import time
import traceback
from datetime import datetime
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from .catalog import (
    DEFAULT_CREDENTIALS,
    DEFAULT_OAUTH_CLIENT,
    DEFAULT_SIZES,
    LOGIN_KEYS,
    NO_TIMESTAMPS,
    PATH_TO_STREAM,
    PRIMARY_KEYS,
    STREAMS,
    TOKEN_PATH,
)
from .data import DataGenerator
from .filters import ApiError, apply, format_ms, normalize_instant, parse_filters, parse_sort
from .more import SYSTEM_USER_PREFIX, MoreObjects
from .spend import SpendEmulator

FAULT_KINDS = ("500_json", "502_html", "503_empty", "drop", "bdc_1322", "expire")
INJECT_KINDS = (*FAULT_KINDS, "bdc_1144", "401_plain", "timeout")
SESSION_INVALID = "Session is invalid.  Please log in."
CACHE_ENTRIES = 64


class Settings:
    """Behaviour switches; plain attributes, safe to flip between requests."""

    def __init__(self) -> None:
        self.session_idle_timeout_s: float = 35 * 60
        self.session_max_requests: int | None = None
        self.token_lifetime_s: float = 3600.0  # OAuth access tokens (expires_in)
        self.latency_s: float = 0.0
        self.max_concurrent: int | None = 3
        self.hourly_limit: int | None = 20000
        self.login_hourly_limit: int | None = None  # BILL: 200 logins / devKey / hour (off by default)
        self.rate_limit_status: int = 429
        self.retry_after: float | int | None = None
        self.next_page_end: str = "omit"  # "omit" | "null" | "empty"
        self.token_mode: str = "offset"  # or "snapshot": tokens point into a frozen result set (no shifts)
        self.fault_rate: float = 0.0
        self.fault_seed: int = 0
        self.fault_kinds: tuple = FAULT_KINDS
        self.forbidden_streams: set = set()
        self.forbidden_code: str = "BDC_1361"
        self.malformed: dict = {}  # stream -> "non_json" | "results_not_list" | "missing_pk"
        self.timeout_sleep_s: float = 5.0
        self.verbose: bool = False
        # seconds added to the Date header only: the gateway's clock off from the clock that stamps updatedTime
        self.date_skew_s: float = 0.0


class Stats:
    """Counters; updated under a lock, read freely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.total_requests = 0
            self.login_count = 0  # successful logins
            self.login_attempts = 0
            self.token_count = 0  # OAuth tokens issued
            self.token_attempts = 0  # token requests that reached the handler
            self.requests_by_path: dict[str, int] = {}
            self.list_requests_by_stream: dict[str, int] = {}
            self.status_counts: dict[int, int] = {}
            self.max_in_flight = 0
            self.rejected_1322 = 0
            self.rejected_1144 = 0
            self.faults_injected: dict[str, int] = {}
            self.first_request_at: float | None = None
            self.last_response_at: float | None = None

    def as_dict(self) -> dict:
        with self._lock:
            return {k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(self).items() if not k.startswith("_")}


class _Response:
    __slots__ = ("body", "ctype", "drop", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        ctype: str | None = "application/json;charset=UTF-8",
        headers: list | None = None,
        drop: bool = False,
    ):
        self.status = status
        self.body = body
        self.ctype = ctype
        self.headers = headers or []
        self.drop = drop


class _Ticket:
    __slots__ = ("method", "path", "slot", "start", "status")

    def __init__(self) -> None:
        self.slot = False
        self.start = time.monotonic()
        self.method = ""
        self.path = ""
        self.status = 0


def _bearer(headers: Any) -> str | None:
    value = headers.get("Authorization") or ""
    return value[len("Bearer ") :] if value.startswith("Bearer ") else None


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _copy(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BillEmulator/1.0"
    sys_version = ""
    timeout = 300  # idle keep-alive connections

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.emu._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emu._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        emu: BillEmulator = self.server.emu
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        ticket = emu._begin()
        try:
            try:
                resp = emu._handle(method, self.path, self.headers, body, ticket)
            except Exception:  # a bug in the emulator: say so loudly, answer 500
                traceback.print_exc(file=sys.stderr)
                resp = _Response(500, _json_bytes(emu._error_body("BDC_1001", "Emulator internal error", "SERVER")))
            ticket.status = resp.status
            if resp.drop:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self._write(resp)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        finally:
            emu._end(ticket)

    def _write(self, resp: _Response) -> None:
        try:
            reason = HTTPStatus(resp.status).phrase
        except ValueError:
            reason = "Status"
        lines = [
            f"HTTP/1.1 {resp.status} {reason}",
            f"Date: {formatdate(time.time() + self.server.emu.settings.date_skew_s, usegmt=True)}",
            f"Server: {self.server_version}",
        ]
        if resp.ctype:
            lines.append(f"Content-Type: {resp.ctype}")
        lines.append(f"Content-Length: {len(resp.body)}")
        for name, value in resp.headers:
            lines.append(f"{name}: {value}")
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + resp.body)
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128


class BillEmulator:
    """Fake BILL v3 API. See package docstring."""

    def __init__(
        self,
        seed: int = 1,
        sizes: dict[str, int] | None = None,
        port: int = 0,
        clock: Callable[[], Any] | None = None,
        host: str = "127.0.0.1",
        verbose: bool = False,
        prefix: str = "/connect",
        spend_sizes: dict[str, int] | None = None,
    ):
        unknown = set(sizes or {}) - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown streams in sizes: {sorted(unknown)}")
        self.seed = seed
        self.host = host
        self.port = port
        self.prefix = prefix.rstrip("/")
        self._clock = clock or time.time
        self.settings = Settings()
        self.settings.verbose = verbose
        self.stats = Stats()
        self.request_log: list[tuple] = []
        self.credentials = dict(DEFAULT_CREDENTIALS)
        self.oauth_client = dict(DEFAULT_OAUTH_CLIENT)
        self._tokens: dict[str, dict] = {}  # OAuth access token -> {"expires": emulator clock s}
        self._lock = threading.RLock()
        self._flight_lock = threading.Lock()
        self._in_flight = 0
        self._active = 0
        self.sizes = dict(DEFAULT_SIZES)
        self.sizes.update(sizes or {})
        self._gen = DataGenerator(seed, self._now_ms())
        self._data: dict[str, list[dict]] = {s: list(rows) for s, rows in self._gen.generate_all(self.sizes).items()}
        self._index: dict[str, dict] = {
            s: {self._pk(s, r): i for i, r in enumerate(rows)} for s, rows in self._data.items()
        }
        self._version = {s: 0 for s in STREAMS}
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._snapshots: collections.OrderedDict = collections.OrderedDict()
        self._json_cache: dict[str, dict] = {s: {} for s in STREAMS}
        self._sessions: dict[str, dict] = {}
        self._hourly: dict[str, collections.deque] = {}
        self._login_hourly: dict[str, collections.deque] = {}
        self._injects: list[list] = []
        self._callbacks: list[Callable] = []
        self._list_counter = {s: 0 for s in STREAMS}
        self._fault_rng: random.Random | None = None
        self._fault_rng_seed: int | None = None
        self._conns: set = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        users = self._data.get("users") or []
        self.user_id = users[0]["id"] if users else self._gen.new_id("006")
        self._token_salt = hashlib.sha1(f"bill-emulator-{seed}".encode()).hexdigest()[:8]
        self.spend = SpendEmulator(self._now_ms, seed, spend_sizes)  # Spend & Expense under /v3/spend/
        self.spend.bearer_valid = self._bearer_valid  # the OAuth tokens of /authx/token serve S&E too
        self.more = MoreObjects(self)  # the objects beyond the 22 lists (more.py)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> BillEmulator:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), _Handler)
        self._server.emu = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"bill-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._flight_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> BillEmulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{self.prefix}"

    @property
    def token_url(self) -> str:
        return f"http://{self.host}:{self.port}{TOKEN_PATH}"

    def config(self, auth_type: str = "user_login", **overrides: Any) -> dict:
        """A connector config for this emulator; username, password, dev_key, is_sync_token, client_id and
        client_secret among ``overrides`` go into ``credentials``, the rest to the top level."""
        if auth_type == "oauth_client_credentials":
            credentials: dict = {"auth_type": auth_type, **self.oauth_client}
            cfg = {"credentials": credentials, "organization_id": self.credentials["organization_id"]}
            cfg.update(base_url=self.base_url, oauth_token_url=self.token_url)
        else:
            credentials = {
                "auth_type": auth_type,
                **{k: self.credentials[k] for k in ("username", "password", "dev_key")},
            }
            cfg = {"credentials": credentials, "organization_id": self.credentials["organization_id"]}
            cfg["base_url"] = self.base_url
        for key, value in overrides.items():
            (credentials if key in (*LOGIN_KEYS, *DEFAULT_OAUTH_CLIENT) else cfg)[key] = value
        return cfg

    def flat_config(self, **overrides: Any) -> dict:
        """A config in the form written before the sign-in choice: username, password and dev_key at the top."""
        cfg = {key: self.credentials[key] for key in ("username", "password", "organization_id", "dev_key")}
        cfg["base_url"] = self.base_url
        cfg.update(overrides)
        return cfg

    # ------------------------------------------------------------------ clock
    def _now_s(self) -> float:
        value = self._clock()
        if isinstance(value, datetime):
            return value.timestamp()
        return float(value)

    def _now_ms(self) -> int:
        return int(self._now_s() * 1000)

    def now_iso(self) -> str:
        return format_ms(self._now_ms())

    # ------------------------------------------------------------------ data API
    @staticmethod
    def _pk(stream: str, rec: dict) -> Any:
        keys = PRIMARY_KEYS[stream]
        if len(keys) == 1:
            return rec.get(keys[0])
        return tuple(rec.get(k) for k in keys)

    def _pos(self, stream: str, record_id: Any) -> int:
        if stream not in STREAMS:
            raise KeyError(f"unknown stream {stream!r}")
        if isinstance(record_id, list):
            record_id = tuple(record_id)
        if isinstance(record_id, dict):
            record_id = self._pk(stream, record_id)
        try:
            return self._index[stream][record_id]
        except KeyError:
            raise KeyError(f"no {stream} record {record_id!r}") from None

    def _bump(self, stream: str) -> None:
        self._version[stream] += 1

    def records(self, stream: str) -> list[dict]:
        """Deep copy of a stream's current records in creation order."""
        with self._lock:
            rows = list(self._data[stream])
        return _copy(rows)

    def record(self, stream: str, record_id: Any) -> dict:
        with self._lock:
            return _copy(self._data[stream][self._pos(stream, record_id)])

    def update_record(self, stream: str, record_id: Any, changes: dict | None = None) -> dict:
        """Apply `changes` (top-level keys; None deletes a key) and set updatedTime = now."""
        with self._lock:
            pos = self._pos(stream, record_id)
            old = self._data[stream][pos]
            rec = _copy(old)
            for key, value in (changes or {}).items():
                if value is None:
                    rec.pop(key, None)
                else:
                    rec[key] = value
            if self._pk(stream, rec) != self._pk(stream, old):
                raise ValueError("changing the primary key is not supported")
            if stream not in NO_TIMESTAMPS:
                rec["updatedTime"] = self.now_iso()
            self._data[stream][pos] = rec
            self._bump(stream)
            return _copy(rec)

    def archive_record(self, stream: str, record_id: Any) -> dict:
        return self.update_record(stream, record_id, {"archived": True})

    def insert_record(self, stream: str, record: dict | None = None) -> dict:
        """Append a record (generated when None); createdTime = updatedTime = now."""
        with self._lock:
            now = self._now_ms()
            if record is None:
                rec = self._gen.new_record(stream, now)
                if "archived" in rec:
                    rec["archived"] = False
            else:
                rec = _copy(record)
                if PRIMARY_KEYS[stream] == ("id",) and not rec.get("id"):
                    rec["id"] = self._gen.new_id(self._id_prefix(stream))
            if stream not in NO_TIMESTAMPS:
                rec["createdTime"] = format_ms(now)
                rec["updatedTime"] = format_ms(now)
            pk = self._pk(stream, rec)
            if pk in self._index[stream]:
                raise ValueError(f"duplicate primary key {pk!r}")
            self._index[stream][pk] = len(self._data[stream])
            self._data[stream].append(rec)
            self._bump(stream)
            return _copy(rec)

    @staticmethod
    def _id_prefix(stream: str) -> str:
        from .catalog import ID_PREFIXES

        return ID_PREFIXES.get(stream, "0zz")

    def set_updated_time(self, stream: str, ids: Any, iso_string: str) -> None:
        """Give every record in `ids` the same updatedTime (normalised to BILL's format)."""
        if stream in NO_TIMESTAMPS:
            raise ValueError(f"{stream} has no updatedTime")
        value = normalize_instant(iso_string)
        if isinstance(ids, (str, tuple)):
            ids = [ids]
        with self._lock:
            for rid in ids:
                pos = self._pos(stream, rid)
                rec = dict(self._data[stream][pos])
                rec["updatedTime"] = value
                self._data[stream][pos] = rec
            self._bump(stream)

    def before_list(self, callback: Callable) -> Callable:
        """Register callback(emu, stream, index) run before serving each list request (index is 0-based
        per stream, counting list requests that passed auth and validation). Returns the callback."""
        self._callbacks.append(callback)
        return callback

    def remove_before_list(self, callback: Callable | None = None) -> None:
        if callback is None:
            self._callbacks.clear()
        elif callback in self._callbacks:
            self._callbacks.remove(callback)

    def expire_sessions(self) -> None:
        with self._lock:
            self._sessions.clear()

    def revoke_tokens(self) -> None:
        """Every OAuth access token issued so far stops working (BILL answers 401 to it)."""
        with self._lock:
            self._tokens.clear()

    def issued_tokens(self) -> int:
        with self._lock:
            return len(self._tokens)

    def inject(self, kind: str, path_contains: str | None = None, times: int = 1) -> None:
        if kind not in INJECT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {INJECT_KINDS}")
        with self._lock:
            self._injects.append([kind, path_contains, int(times)])

    def clear_injections(self) -> None:
        with self._lock:
            self._injects.clear()

    def reset_stats(self) -> None:
        self.stats.reset()
        with self._flight_lock:
            self.stats.max_in_flight = self._in_flight
        self.request_log.clear()

    # ------------------------------------------------------------------ request plumbing
    def _track(self, conn: Any, add: bool) -> None:
        with self._flight_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _begin(self) -> _Ticket:
        ticket = _Ticket()
        with self._flight_lock:
            self._in_flight += 1
            stats = self.stats
            stats.max_in_flight = max(stats.max_in_flight, self._in_flight)
            if stats.first_request_at is None:
                stats.first_request_at = ticket.start
        return ticket

    def _end(self, ticket: _Ticket) -> None:
        now = time.monotonic()
        with self._flight_lock:
            self._in_flight -= 1
            if ticket.slot:
                self._active -= 1
            self.stats.last_response_at = now
        with self.stats._lock:
            self.stats.status_counts[ticket.status] = self.stats.status_counts.get(ticket.status, 0) + 1
        if self.settings.verbose:
            sys.stderr.write(
                f"[bill-emulator] {ticket.method} {ticket.path} -> "
                f"{ticket.status or 'dropped'} {(now - ticket.start) * 1000:.1f}ms\n"
            )

    def _error_body(self, code: str, message: str, category: str = "REQUEST") -> list:
        return [
            {"timestamp": self.now_iso(), "code": code, "severity": "ERROR", "category": category, "message": message}
        ]

    def _error(
        self, status: int, code: str, message: str, category: str = "REQUEST", headers: list | None = None
    ) -> _Response:
        return _Response(status, _json_bytes(self._error_body(code, message, category)), headers=headers)

    def _rate_limited(self, code: str, message: str) -> _Response:
        headers = []
        if self.settings.retry_after is not None:
            headers.append(("Retry-After", str(self.settings.retry_after)))
        return self._error(self.settings.rate_limit_status, code, message, "REQUEST", headers)

    def _fault_response(self, kind: str, headers: Any, is_login: bool) -> _Response | None:
        with self.stats._lock:
            self.stats.faults_injected[kind] = self.stats.faults_injected.get(kind, 0) + 1
        if kind == "500_json":
            return self._error(500, "BDC_1001", "Unexpected system error. Please try again later.", "SERVER")
        if kind == "502_html":
            body = (
                b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
                b"</center></body></html>"
            )
            return _Response(502, body, "text/html")
        if kind == "503_empty":
            return _Response(503, b"", None)
        if kind == "drop":
            return _Response(0, drop=True)
        if kind == "bdc_1322":
            return self._rate_limited("BDC_1322", "Max number of concurrent requests per organization reached.")
        if kind == "bdc_1144":
            return self._rate_limited(
                "BDC_1144", f"Max number of allowed requests per hour reached: {self.settings.hourly_limit or 20000}."
            )
        if kind == "expire":
            sid = headers.get("sessionId")
            with self._lock:
                self._sessions.pop(sid, None)
                self._tokens.pop(_bearer(headers) or "", None)
            return self._error(401, "BDC_1109", SESSION_INVALID, "DOWNSTREAM")
        if kind == "401_plain":
            return _Response(401, b'{"message":"Unauthorized"}')
        if kind == "timeout":
            time.sleep(self.settings.timeout_sleep_s)
            return None
        raise ValueError(kind)

    def _pick_fault(self, rel: str, is_login: bool) -> str | None:
        with self._lock:
            for entry in self._injects:
                kind, contains, _left = entry
                if contains is not None and contains not in rel:
                    continue
                if contains is None and rel.endswith("/v3/health"):
                    continue
                if kind == "expire" and is_login:
                    continue
                entry[2] -= 1
                if entry[2] <= 0:
                    self._injects.remove(entry)
                return kind
            s = self.settings
            if s.fault_rate and s.fault_rate > 0 and not rel.endswith("/v3/health"):
                if self._fault_rng is None or self._fault_rng_seed != s.fault_seed:
                    self._fault_rng = random.Random(s.fault_seed)
                    self._fault_rng_seed = s.fault_seed
                if self._fault_rng.random() < s.fault_rate:
                    kinds = [k for k in s.fault_kinds if not (is_login and k == "expire")]
                    if kinds:
                        return self._fault_rng.choice(kinds)
        return None

    def _hourly_check(self, table: dict, dev_key: str, limit: int | None) -> bool:
        """Count a request for dev_key in a moving hour; False when over the limit (not counted)."""
        if limit is None:
            return True
        key = hashlib.sha256(dev_key.encode("utf-8", "replace")).hexdigest()
        now = self._now_s()
        with self._lock:
            dq = table.setdefault(key, collections.deque())
            while dq and dq[0] <= now - 3600:
                dq.popleft()
            if len(dq) >= limit:
                return False
            dq.append(now)
            return True

    def _handle(self, method: str, raw_path: str, headers: Any, body: bytes, ticket: _Ticket) -> _Response:
        parts = urlsplit(raw_path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if path == self.prefix or path.startswith(self.prefix + "/"):
            rel = path[len(self.prefix) :] or "/"
        else:
            rel = path
        ticket.method, ticket.path = method, rel + (f"?{parts.query}" if parts.query else "")
        stream = PATH_TO_STREAM.get(rel) if method == "GET" and rel != path else None
        stats = self.stats
        with stats._lock:
            stats.total_requests += 1
            stats.requests_by_path[rel] = stats.requests_by_path.get(rel, 0) + 1
            if stream:
                stats.list_requests_by_stream[stream] = stats.list_requests_by_stream.get(stream, 0) + 1
            self.request_log.append((method, rel, dict(query), tuple(headers.keys())))
        s = self.settings
        is_health = rel == "/v3/health"
        is_token = method == "POST" and path == TOKEN_PATH
        is_login = (method == "POST" and rel == "/v3/login") or is_token
        if rel.startswith("/v3/spend/"):  # its own credential and limits (spend.py)
            return _Response(*self.spend.handle(method, rel, query, headers))

        # concurrency (per devKey/org; the emulator serves one organisation)
        if not is_health:
            with self._flight_lock:
                if s.max_concurrent is not None and self._active >= s.max_concurrent:
                    with stats._lock:
                        stats.rejected_1322 += 1
                    return self._rate_limited("BDC_1322", "Max number of concurrent requests per organization reached.")
                self._active += 1
                ticket.slot = True
            if s.latency_s:
                time.sleep(s.latency_s)

        login_body: Any = None
        dev_key = headers.get("devKey") or self._token_client(headers)  # the hourly budget's key
        if is_login and not is_token:
            try:
                login_body = json.loads(body.decode("utf-8")) if body else None
            except (ValueError, UnicodeDecodeError):
                login_body = None
            dev_key = login_body.get("devKey") if isinstance(login_body, dict) else None
            if isinstance(dev_key, str) and not self._hourly_check(self._login_hourly, dev_key, s.login_hourly_limit):
                with stats._lock:
                    stats.rejected_1144 += 1
                return self._rate_limited(
                    "BDC_1144", f"Max number of allowed logins per hour reached: {s.login_hourly_limit}."
                )
        if isinstance(dev_key, str) and not is_health:
            if not self._hourly_check(self._hourly, dev_key, s.hourly_limit):
                with stats._lock:
                    stats.rejected_1144 += 1
                return self._rate_limited(
                    "BDC_1144", f"Max number of allowed requests per hour reached: {s.hourly_limit}."
                )

        kind = self._pick_fault(rel, is_login)
        if kind is not None:
            resp = self._fault_response(kind, headers, is_login)
            if resp is not None:
                return resp

        try:
            return self._route(method, rel, path, query, headers, login_body, body, stream)
        except ApiError as err:
            return self._error(err.status, err.code, err.message, err.category)

    # ------------------------------------------------------------------ routes
    def _route(
        self,
        method: str,
        rel: str,
        path: str,
        query: dict,
        headers: Any,
        login_body: Any,
        body: bytes,
        stream: str | None,
    ) -> _Response:
        if path == TOKEN_PATH and method == "POST":
            return self._grant_token(headers, body)
        if rel == path:  # outside the prefix
            raise ApiError(404, "BDC_1121", "API not supported.")
        if rel == "/v3/health" and method == "GET":
            return _Response(200, _json_bytes({"status": "UP", "app": "bill-emulator", "version": "1.0"}))
        if rel == "/v3/login" and method == "POST":
            return self._login(login_body, body)
        if method != "GET" and rel != "/v3/logout":
            raise ApiError(404, "BDC_1121", "API not supported.")
        session = self._authenticate(headers)
        if rel == "/v3/logout" and method == "POST":
            with self._lock:
                self._sessions.pop(headers.get("sessionId"), None)
            return _Response(200, b"", None)
        if rel == "/v3/login/session":
            return _Response(
                200,
                _json_bytes(
                    {
                        "organizationId": session["org"],
                        "userId": session["user"],
                        "mfaStatus": "DISABLED",
                        "mfaBypass": False,
                    }
                ),
            )
        if stream is not None:
            return self._list(stream, query)
        more = self.more.route(rel, query, session)
        if more is not None:
            return more
        base, _, rid = rel.rpartition("/")
        single = PATH_TO_STREAM.get(base)
        if single and rid and PRIMARY_KEYS[single] == ("id",):
            with self._lock:
                pos = self._index[single].get(rid)
                rec = self._data[single][pos] if pos is not None else None
            if rec is None:
                raise ApiError(404, "BDC_1205", f"Object not found: {rid}")
            return _Response(200, _json_bytes(rec))
        raise ApiError(404, "BDC_1121", "API not supported.")

    def _login(self, body: Any, raw: bytes) -> _Response:
        with self.stats._lock:
            self.stats.login_attempts += 1
        if not isinstance(body, dict):
            raise ApiError(400, "BDC_1001", "Invalid request body: JSON object expected.")
        for field in ("username", "password", "organizationId", "devKey"):
            if not isinstance(body.get(field), str) or not body.get(field):
                raise ApiError(400, "BDC_1001", f"{field}: must not be null")
        creds = self.credentials
        if body["devKey"] != creds["dev_key"]:
            raise ApiError(400, "BDC_1102", "Developer key is invalid.")
        if body["organizationId"] != creds["organization_id"]:
            raise ApiError(400, "BDC_1123", "Invalid organization id.")
        sync_token = self.more.sync_tokens.get(body["username"]) == body["password"]
        if not sync_token and (body["username"] != creds["username"] or body["password"] != creds["password"]):
            raise ApiError(400, "BDC_1101", "Sign in failed. The user name and/or password do not match.")
        sid = "!" + secrets.token_urlsafe(30)
        with self._lock:
            self._sessions[sid] = {
                "last": self._now_s(),
                "count": 0,
                "org": creds["organization_id"],
                "user": SYSTEM_USER_PREFIX + sid[1:13] if sync_token else self.user_id,
            }
        with self.stats._lock:
            self.stats.login_count += 1
        return _Response(
            200,
            _json_bytes(
                {"organizationId": creds["organization_id"], "sessionId": sid, "trusted": False, "userId": self.user_id}
            ),
        )

    def _grant_token(self, headers: Any, body: bytes) -> _Response:
        """OAuth 2.0 client credentials (RFC 6749 4.4): a form body, a JSON answer, RFC 6749 error codes."""
        with self.stats._lock:
            self.stats.token_attempts += 1
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if "application/x-www-form-urlencoded" not in (headers.get("Content-Type") or ""):
            return _Response(400, _json_bytes({"error": "invalid_request", "error_description": "form body expected"}))
        if form.get("grant_type") != "client_credentials":
            return _Response(400, _json_bytes({"error": "unsupported_grant_type"}))
        client = self.oauth_client
        if form.get("client_id") != client["client_id"] or form.get("client_secret") != client["client_secret"]:
            return _Response(401, _json_bytes({"error": "invalid_client", "error_description": "Bad client."}))
        token = "bt_" + secrets.token_urlsafe(30)
        lifetime = self.settings.token_lifetime_s
        with self._lock:
            self._tokens[token] = {"expires": self._now_s() + lifetime, "client": client["client_id"]}
        with self.stats._lock:
            self.stats.token_count += 1
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": int(lifetime)}
        return _Response(200, _json_bytes(answer))

    def _bearer_valid(self, token: str) -> bool:
        with self._lock:
            entry = self._tokens.get(token)
            return entry is not None and self._now_s() < entry["expires"]

    def _token_client(self, headers: Any) -> str | None:
        token = _bearer(headers)
        with self._lock:
            entry = self._tokens.get(token) if token else None
        return f"oauth:{entry['client']}" if entry else None

    def _authenticate(self, headers: Any) -> dict:
        token = _bearer(headers)
        if token is not None:
            with self._lock:
                entry = self._tokens.get(token)
                if entry is None or self._now_s() >= entry["expires"]:
                    self._tokens.pop(token, None)
                    raise ApiError(401, "BDC_1109", "Access token is invalid or expired.", "DOWNSTREAM")
            return {"org": self.credentials["organization_id"], "user": self.user_id}
        sid = headers.get("sessionId")
        dev_key = headers.get("devKey")
        s = self.settings
        with self._lock:
            session = self._sessions.get(sid) if sid else None
            if session is None:
                raise ApiError(401, "BDC_1109", SESSION_INVALID, "DOWNSTREAM")
            now = self._now_s()
            if s.session_idle_timeout_s is not None and now - session["last"] > s.session_idle_timeout_s:
                del self._sessions[sid]
                raise ApiError(401, "BDC_1109", SESSION_INVALID, "DOWNSTREAM")
            if s.session_max_requests is not None and session["count"] >= s.session_max_requests:
                del self._sessions[sid]
                raise ApiError(401, "BDC_1109", SESSION_INVALID, "DOWNSTREAM")
            if dev_key != self.credentials["dev_key"]:
                raise ApiError(401, "BDC_1102", "Developer key is invalid.")
            session["last"] = now
            session["count"] += 1
            return session

    # ------------------------------------------------------------------ lists
    def _token(self, qhash: str, offset: int, snap: str | None = None) -> str:
        data: dict[str, Any] = {"q": qhash, "o": offset}
        if snap is not None:
            data["s"] = snap
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _untoken(self, token: str, qhash: str) -> tuple[int, str | None]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            offset = data["o"]
            snap = data.get("s")
            ok = data["q"] == qhash and isinstance(offset, int) and offset >= 0
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise ApiError(400, "BDC_1001", "Invalid page token.")
        return offset, snap

    def _rows(self, stream: str, fkey: str, skey: str, preds: list, sort: list) -> list[dict]:
        key = (stream, fkey, skey)
        with self._lock:
            version = self._version[stream]
            hit = self._cache.get(key)
            if hit is not None and hit[0] == version:
                self._cache.move_to_end(key)
                return hit[1]
            rows = apply(stream, self._data[stream], preds, sort)
            self._cache[key] = (version, rows)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
            return rows

    def _rec_json(self, stream: str, rec: dict) -> str:
        cache = self._json_cache[stream]
        pk = self._pk(stream, rec)
        hit = cache.get(pk)
        if hit is not None and hit[0] is rec:
            return hit[1]
        text = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
        cache[pk] = (rec, text)
        return text

    def _end_marker(self, mode: str) -> str | None:
        if mode == "null":
            return "null"
        if mode == "empty":
            return '""'
        return None  # omit

    def _list(self, stream: str, query: dict) -> _Response:
        if stream in self.settings.forbidden_streams:
            raise ApiError(
                403,
                self.settings.forbidden_code,
                "You do not have permission to access this resource (untrusted session or role).",
            )
        raw_max = query.get("max")
        if raw_max is None:
            page_size = 20
        else:
            try:
                page_size = int(raw_max)
            except ValueError:
                raise ApiError(400, "BDC_1001", f"Invalid value for max: {raw_max}") from None
            if not 1 <= page_size <= 100:
                raise ApiError(400, "BDC_1001", "max must be between 1 and 100.")
        fkey = (query.get("filters") or "").strip()
        skey = (query.get("sort") or "").strip()
        preds = parse_filters(stream, fkey)
        sort = parse_sort(stream, skey)
        qhash = hashlib.sha1(f"{self._token_salt}|{stream}|{fkey}|{skey}|{page_size}".encode()).hexdigest()[:16]
        token = query.get("page")
        offset, snap = self._untoken(token, qhash) if token else (0, None)
        snapshot_mode = self.settings.token_mode == "snapshot"
        if snap is not None and snap not in self._snapshots:
            raise ApiError(400, "BDC_1001", "Invalid page token (expired).")

        with self._lock:
            index = self._list_counter[stream]
            self._list_counter[stream] = index + 1
        for callback in list(self._callbacks):
            callback(self, stream, index)

        if snap is not None:
            rows = self._snapshots[snap]
        else:
            rows = self._rows(stream, fkey, skey, preds, sort)
            if snapshot_mode:  # a server-side cursor: later pages see the result set of the first request
                snap = secrets.token_hex(6)
                with self._lock:
                    self._snapshots[snap] = rows
                    while len(self._snapshots) > 256:
                        self._snapshots.popitem(last=False)
        page = rows[offset : offset + page_size]
        has_next = offset + page_size < len(rows)
        malformed = self.settings.malformed.get(stream)
        if malformed == "non_json":
            return _Response(200, b'{"nextPage":"x","results":[{"id":"' + stream.encode() + b'", "name": <html>')
        if malformed == "results_not_list":
            first = page[0] if page else {}
            return _Response(200, _json_bytes({"results": first}))
        if malformed == "missing_pk":
            keys = PRIMARY_KEYS[stream]
            texts = [
                json.dumps({k: v for k, v in r.items() if k not in keys}, ensure_ascii=False, separators=(",", ":"))
                for r in page
            ]
        else:
            texts = [self._rec_json(stream, r) for r in page]

        parts = []
        end = self._end_marker(self.settings.next_page_end)
        if has_next:
            parts.append('"nextPage":"' + self._token(qhash, offset + page_size, snap) + '"')
        elif end is not None:
            parts.append('"nextPage":' + end)
        if offset > 0:
            parts.append('"prevPage":"' + self._token(qhash, max(0, offset - page_size), snap) + '"')
        elif end is not None:
            parts.append('"prevPage":' + end)
        parts.append('"results":[' + ",".join(texts) + "]")
        return _Response(200, ("{" + ",".join(parts) + "}").encode("utf-8"))
