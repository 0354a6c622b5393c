"""The local alert receiver: a small HTTP server Alertmanager's webhook receivers post to.

Each POST to /<receiver> (hrp-warning, hrp-critical) is appended as one JSON line
{"receiver": ..., "received_at": <Unix seconds>, "payload": <Alertmanager's JSON>} to
DIR/<receiver>.jsonl, flushed before the 200 answer: a person can `tail -f` it, the live tests
read it. GET /-/ready answers 200 (the harness waits for it). Nothing else is served.

Standard library only: the harness copies this file into STATE/monitor/bin and runs it with
Debian's python3 as the server user (hrp_harness/ops/monitor.py), like the stack's other servers.

    python3 webhook_sink.py --listen 127.0.0.1:PORT --dir DIR
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RECEIVER = re.compile(r"^/([a-z0-9][a-z0-9-]{0,62})$")
MAX_BODY = 10 * 1024 * 1024
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    directory: Path

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._answer(200 if self.path == "/-/ready" else 404)

    def do_POST(self) -> None:  # noqa: N802
        match = RECEIVER.match(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if not match or length > MAX_BODY:
            self._answer(404 if not match else 413)
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self._answer(400)
            return
        line = json.dumps({"receiver": match.group(1), "received_at": time.time(), "payload": payload})
        with _lock, open(self.directory / f"{match.group(1)}.jsonl", "a") as out:
            out.write(line + "\n")
            out.flush()
        self._answer(200)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port")
    parser.add_argument("--dir", required=True, type=Path, help="where the .jsonl files go")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    args.dir.mkdir(parents=True, exist_ok=True)
    Handler.directory = args.dir
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
