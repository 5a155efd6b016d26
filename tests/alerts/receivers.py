"""Real local receivers for alert tests: an HTTP webhook receiver and an SMTP server (aiosmtpd), each in a thread."""

from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every POST; ``statuses`` answers in turn (then 200).

    ``gate`` (a threading.Event) makes requests wait until it is set: a slow receiver.
    """

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.gate: threading.Event | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.gate is not None:
                    receiver.gate.wait(30)
                with receiver._lock:
                    receiver.in_flight -= 1
                    receiver.received.append({"path": self.path, "status": status, "headers": dict(self.headers),
                                              "json": json.loads(body)})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    def accepted(self, path: str | None = None) -> list[dict[str, Any]]:
        """The JSON bodies answered 2xx (on ``path`` only, if given)."""
        with self._lock:
            return [r["json"] for r in self.received if r["status"] < 300 and (path is None or r["path"] == path)]


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1: ``messages`` are the parsed mails received."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                receiver.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        # aiosmtpd checks it is up by connecting to the configured port, so it needs a real one.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "SmtpReceiver":
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

