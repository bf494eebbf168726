#!/usr/bin/env python3
"""tftp_server.py: a read-only TFTP server (RFC 1350, octet mode, 512-byte blocks, no options)
for the URL tests. Each read request is served from its own socket in a thread. Prints its
port on stdout when ready. Usage: tftp_server.py DIR"""
import os
import socket
import struct
import sys
import threading


def serve(root, req, client):
    parts = req[2:].split(b"\0")
    name = parts[0].decode(errors="replace").lstrip("/")
    path = os.path.normpath(os.path.join(root, name))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(1.0)
    if not path.startswith(root) or not os.path.isfile(path):
        s.sendto(struct.pack("!HH", 5, 1) + b"File not found\0", client)
        return
    with open(path, "rb") as f:
        block = 1
        while True:
            data = f.read(512)
            pkt = struct.pack("!HH", 3, block & 0xFFFF) + data
            for _ in range(10):
                s.sendto(pkt, client)
                try:
                    ack, addr = s.recvfrom(1024)
                except socket.timeout:
                    continue
                op, num = struct.unpack("!HH", ack[:4])
                if op == 4 and num == block & 0xFFFF:
                    break
                if op == 5:
                    return
            else:
                return
            if len(data) < 512:
                return
            block += 1


def main():
    root = os.path.abspath(sys.argv[1])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1], flush=True)
    while True:
        req, client = s.recvfrom(2048)
        if len(req) > 2 and struct.unpack("!H", req[:2])[0] == 1:
            threading.Thread(target=serve, args=(root, req, client), daemon=True).start()


if __name__ == "__main__":
    main()
