#!/usr/bin/env python3
"""http_server.py: a small static file server for the URL tests: honours single byte ranges
(206), or ignores them with --no-ranges (always 200, whole body), and can fail the first N GET
requests with 503 (--fail-first N) to exercise retries. Prints its port on stdout when ready.
Usage: http_server.py [--no-ranges] [--fail-first N] [--port P] DIR"""
import argparse
import http.server
import os
import re
import socketserver
import sys
import threading

args = None
fail_lock = threading.Lock()
fail_left = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def _path(self):
        p = os.path.normpath(os.path.join(args.dir, self.path.split("?")[0].lstrip("/")))
        if not p.startswith(os.path.abspath(args.dir)) or not os.path.isfile(p):
            return None
        return p

    def _send_head(self, body):
        global fail_left
        path = self._path()
        if path is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if body:
            with fail_lock:
                if fail_left > 0:
                    fail_left -= 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
        size = os.path.getsize(path)
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and not args.no_ranges:
            m = re.match(r"bytes=(\d*)-(\d*)$", rng.strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else size - 1
                else:
                    start = max(0, size - int(m.group(2)))
                end = min(end, size - 1)
                if start > end or start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", "bytes */%d" % size)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
        self.send_response(status)
        if not args.no_ranges:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not body:
            return
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                left -= len(chunk)

    def do_HEAD(self):
        self._send_head(False)

    def do_GET(self):
        self._send_head(True)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # clients drop streams they no longer need: not worth a traceback
        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main():
    global args, fail_left
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-ranges", action="store_true")
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("dir")
    args = ap.parse_args()
    args.dir = os.path.abspath(args.dir)
    fail_left = args.fail_first
    srv = Server(("127.0.0.1", args.port), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
