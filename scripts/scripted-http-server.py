#!/usr/bin/python3
"""A scripted HTTP(S) server for client tests: answers each request with the first matching rule.

Usage: scripted-http-server.py RULES.json LOG.jsonl [--cert CERT --key KEY]
Prints the bound port on stdout, then serves on 127.0.0.1 until killed.

RULES.json is a list of {"method", "path" (prefix), "status", "headers" {}, "body" (JSON or string),
"times" (optional: how many requests the rule answers before it is used up)}. In a body or header,
"$PORT" is replaced by the bound port. Every request is appended to LOG.jsonl as
{"method", "path", "headers", "body"}. No rule matches: 599 with an explanation.
"""
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

rules_path, log_path = sys.argv[1], sys.argv[2]
cert = key = None
if "--cert" in sys.argv:
    cert = sys.argv[sys.argv.index("--cert") + 1]
    key = sys.argv[sys.argv.index("--key") + 1]
with open(rules_path) as handle:
    rules = json.load(handle)
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        with lock:
            with open(log_path, "a") as log:
                log.write(json.dumps({"method": self.command, "path": self.path,
                                      "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}) + "\n")
            rule = None
            for candidate in rules:
                if candidate["method"] == self.command and self.path.startswith(candidate["path"]) \
                        and candidate.get("times", 1) != 0:
                    rule = candidate
                    if "times" in candidate:
                        candidate["times"] -= 1
                    break
        port = str(self.server.server_address[1])
        if rule is None:
            status, headers, payload = 599, {}, "no rule for %s %s" % (self.command, self.path)
        else:
            status, headers, payload = rule["status"], rule.get("headers", {}), rule.get("body", "")
        if not isinstance(payload, str):
            payload = json.dumps(payload)
        data = payload.replace("$PORT", port).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value.replace("$PORT", port))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = answer


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if cert:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
