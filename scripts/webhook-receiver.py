#!/usr/bin/env python3
"""A webhook receiver for the tests, checking every event with the Standard Webhooks reference library
(`pip install standardwebhooks`), not with our own code.

It listens on 127.0.0.1 (a free port, printed as the first line on stdout). Events are POSTed to
/hooks/<name>; what each name does is set with PUT /_control/<name> and a JSON body:
  {"secrets": ["whsec_…", …],  # each event is checked with each secret, separately
   "fail": N,                   # answer the next N events with 500
   "redirect": true,            # answer with a 302 to /hooks/<name>-moved
   "delay": S}                  # wait S seconds before answering the next event
GET /_log returns every event received, in order: name, webhook-id, type, whether each secret verified
it (with the library's error otherwise), the status answered, and the raw body.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

LOCK = threading.Lock()
CONFIG = {}
LOG = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        return self.rfile.read(int(self.headers.get("content-length", "0")))

    def do_PUT(self):
        if not self.path.startswith("/_control/"):
            return self.answer(404)
        with LOCK:
            CONFIG[self.path[len("/_control/"):]] = json.loads(self.read_body())
        self.answer(204)

    def do_GET(self):
        if self.path != "/_log":
            return self.answer(404)
        with LOCK:
            body = json.dumps(LOG).encode()
        self.answer(200, body, [("content-type", "application/json")])

    def do_POST(self):
        if not self.path.startswith("/hooks/"):
            return self.answer(404)
        name = self.path[len("/hooks/"):]
        body = self.read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        with LOCK:
            config = CONFIG.setdefault(name, {})
            secrets = list(config.get("secrets", []))
            delay = config.pop("delay", 0)
            if config.get("fail", 0) > 0:
                config["fail"] -= 1
                status = 500
            elif config.get("redirect"):
                status = 302
            else:
                status = 204
        verified = []
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified.append("ok")
            except Exception as e:  # the library's verification error, recorded for the test
                verified.append(f"{type(e).__name__}: {e}")
        try:
            event_type = json.loads(body).get("type")
        except ValueError:
            event_type = None
        entry = {
            "name": name,
            "id": headers.get("webhook-id"),
            "type": event_type,
            "verified": verified,
            "status": status,
            "body": body.decode("utf-8", "replace"),
            "at": time.time(),
        }
        with LOCK:
            LOG.append(entry)
        if delay:
            time.sleep(delay)
        if status == 302:
            return self.answer(302, headers=[("location", f"/hooks/{name}-moved")])
        self.answer(status, b"receiver says no" if status == 500 else b"")


class Server(ThreadingHTTPServer):
    # The default listen backlog (5) drops connections when a sender delivers in parallel, and the
    # sender's SYN is retried a second later: the receiver, not the sender, would be measured.
    request_queue_size = 128
    daemon_threads = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
