"""A small BILL stand-in on 127.0.0.1 that misbehaves on purpose: redirects, echoes, errors, hangs.

``answer`` decides each reply from the request: it returns ``(status, headers, body)`` or ``None`` to hang
until the server stops. Every request is recorded (method, path, headers, body), so a test can prove what
reached which server.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

Reply = Optional[Tuple[int, Mapping[str, str], Union[bytes, str]]]


@dataclass
class Seen:
    method: str
    path: str
    headers: Dict[str, str]
    body: bytes


@dataclass
class Server:
    answer: Callable[[Seen], Reply]
    seen: List[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
                server.seen.append(seen)
                reply = server.answer(seen)
                if reply is None:
                    server._stop.wait(120)
                    return
                status, headers, body = reply
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def paths(self) -> List[str]:
        return [s.path.split("?")[0] for s in self.seen]


def login_ok(session_id: str = "SESSION-Quetzal-62817") -> Reply:
    return 200, {"Content-Type": "application/json"}, json.dumps({"sessionId": session_id, "userId": "006U1"})


def page(records: List[Dict[str, Any]]) -> Reply:
    return 200, {"Content-Type": "application/json"}, json.dumps({"results": records, "nextPage": None})
