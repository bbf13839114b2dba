"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests (no network beyond loopback).

Programmable: `server.script` is a list of actions consumed one per request (then `server.default`):
  ("json", handler)     200 with message content = handler(request_json) (a str)
  ("text", "raw")       200 with that exact content (e.g. bad JSON for the caller to reject)
  ("status", 429)       that HTTP status with an error body (plus Retry-After: 0 for 429)
  ("sleep", seconds)    sleep before answering with the default action (client timeouts)
`server.requests` records every request body; `server.calls` counts them. Answers report `usage`
(characters counted as tokens), as OpenAI-compatible servers do.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class FakeOpenAIServer:
    def __init__(self, default: tuple[str, Any] = ("text", "ok"), logprobs: Callable | None = None) -> None:
        self.default = default
        self.script: list[tuple[str, Any]] = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.logprobs = logprobs  # optional: request_json, content -> OpenAI logprobs.content list
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def calls(self) -> int:
        return len(self.requests)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _next_action(self) -> tuple[str, Any]:
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    def __enter__(self) -> "FakeOpenAIServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})  # HTTP names are case-blind
                kind, arg = server._next_action()
                if kind == "sleep":
                    time.sleep(arg)
                    kind, arg = server.default
                if kind == "status":
                    extra = {"Retry-After": "0"} if arg == 429 else {}
                    self._send(arg, {"error": {"message": f"fake error {arg}"}}, extra)
                    return
                n = int(body.get("n") or 1)
                choices = []
                for i in range(n):
                    content = arg(body) if kind == "json" else arg
                    choice = {"index": i, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": content}}
                    if body.get("logprobs") and server.logprobs is not None:
                        choice["logprobs"] = {"content": server.logprobs(body, content)}
                    choices.append(choice)
                prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
                answer = sum(len(c["message"]["content"]) for c in choices)
                usage = {"prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer}
                self._send(200, {"id": "fake", "object": "chat.completion", "model": body.get("model"),
                                 "choices": choices, "usage": usage})

            def _send(self, code: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
