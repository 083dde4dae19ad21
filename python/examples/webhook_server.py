"""A LiveKit webhook endpoint with nothing but the standard library and Warden.

    LIVEKIT_API_KEY=… LIVEKIT_API_SECRET=… python examples/webhook_server.py --port 8090

Point LiveKit's `webhook.urls` at http://<host>:8090/webhooks/livekit (behind
TLS in production). Each delivery is verified exactly as the Warden gateway
verifies it — signature over the raw bytes first, then JSON, schema,
sanitising and the replay window — and the sanitised event is printed as one
JSON line. Refusals are answered as the gateway answers them.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import warden

receiver: warden.WebhookReceiver


class Handler(BaseHTTPRequestHandler):
    server_version = "warden-example"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?")[0] != "/webhooks/livekit":
            return self.answer(404, {"error": "not_found"})
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self.answer(411, {"error": "length_required"})
        if length < 0 or length > 1 << 20:
            return self.answer(413, {"error": "body_too_large"})
        body = self.rfile.read(length)
        try:
            event = receiver.receive(body, self.headers.get("Authorization"), self.client_address[0])
        except warden.WebhookError as e:
            return self.answer(e.status, {"error": e.code})
        if event is not None:
            print(json.dumps(event), flush=True)
        self.answer(200, {"ok": True})

    def answer(self, status: int, doc: dict[str, object]) -> None:
        payload = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        # Request lines go to stderr, masked like every other log line.
        sys.stderr.write(warden.get_security_manager().protect_api_keys_in_logs(format % args) + "\n")


def main() -> None:
    global receiver
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    args = parser.parse_args()
    receiver = warden.WebhookReceiver()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
