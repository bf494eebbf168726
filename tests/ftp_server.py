#!/usr/bin/env python3
"""ftp_server.py: a small read-only FTP server for the URL tests (anonymous login, passive mode,
SIZE, REST, RETR, binary only). Prints its port on stdout when ready. Usage: ftp_server.py DIR"""
import os
import socket
import sys
import threading

ROOT = None


def handle(conn):
    f = conn.makefile("rwb", buffering=0)
    rest = 0
    pasv = None

    def reply(line):
        f.write((line + "\r\n").encode())

    reply("220 sheepfold test ftp")
    while True:
        line = f.readline()
        if not line:
            break
        parts = line.decode(errors="replace").strip().split(" ", 1)
        cmd = parts[0].upper()
        arg = parts[1] if len(parts) > 1 else ""
        path = os.path.normpath(os.path.join(ROOT, arg.lstrip("/")))
        if cmd == "USER":
            reply("331 any password")
        elif cmd == "PASS":
            reply("230 logged in")
        elif cmd == "PWD":
            reply('257 "/"')
        elif cmd == "CWD":
            reply("250 ok")
        elif cmd == "TYPE":
            reply("200 binary")
        elif cmd == "SIZE":
            if path.startswith(ROOT) and os.path.isfile(path):
                reply("213 %d" % os.path.getsize(path))
            else:
                reply("550 no such file")
        elif cmd == "MDTM":
            reply("550 not available")
        elif cmd == "REST":
            rest = int(arg)
            reply("350 restarting at %d" % rest)
        elif cmd in ("EPSV", "PASV"):
            if pasv:
                pasv.close()
            pasv = socket.socket()
            pasv.bind(("127.0.0.1", 0))
            pasv.listen(1)
            port = pasv.getsockname()[1]
            if cmd == "EPSV":
                reply("229 Entering Extended Passive Mode (|||%d|)" % port)
            else:
                reply("227 Entering Passive Mode (127,0,0,1,%d,%d)" % (port >> 8, port & 255))
        elif cmd == "RETR":
            if not (path.startswith(ROOT) and os.path.isfile(path)) or not pasv:
                reply("550 no such file")
                continue
            reply("150 sending")
            data, _ = pasv.accept()
            try:
                with open(path, "rb") as src:
                    src.seek(rest)
                    while True:
                        chunk = src.read(1 << 16)
                        if not chunk:
                            break
                        data.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            data.close()
            pasv.close()
            pasv = None
            rest = 0
            reply("226 done")
        elif cmd == "ABOR":
            reply("226 aborted")
        elif cmd == "QUIT":
            reply("221 bye")
            break
        else:
            reply("502 not implemented")
    conn.close()


def main():
    global ROOT
    ROOT = os.path.abspath(sys.argv[1])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    print(s.getsockname()[1], flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
