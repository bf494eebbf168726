# nbd_abuse.py: the NBD port's limits (sheep(8), LIMITS) as a hostile client would test them: 1100
# connections that stall in the middle of a negotiation (STARTTLS included) or of a request, from
# one attacker address, while another NBD client keeps reading and writing; prints the figures.
#   nbd_abuse.py PORT PID LOG ATTACKER_ADDR VDI [PSK_DIR]
#   nbd_abuse.py readflood PORT PID VDI    8 connections x 16 READs of 32 MiB whose replies are never
#                                          read (the sheep runs with --max-buffer 64)
# With PSK_DIR the export needs TLS: the other client is qemu-io with tls-creds-psk, and some
# stalls come after STARTTLS; without, the other client is nbdproto's and some stalls come in
# the middle of a transmission request, beside connections that are idle between requests or
# do not read their replies (those must stay open).
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from nbdproto import Client, IHAVEOPT, OPT_GO, OPT_STARTTLS, REQMAGIC, CMD_READ, CMD_WRITE
from abuse import rss_mib, cpu_s, report

TIMEOUT_S = 3        # the scenario runs sheep with --request-timeout 3


class PlainWorker(threading.Thread):
    """negotiates afresh every round, writes and reads back 64 KiB, disconnects"""
    def __init__(self, port, vdi, seconds):
        threading.Thread.__init__(self)
        self.port, self.vdi, self.seconds = port, vdi, seconds
        self.lat, self.err = [], None

    def run(self):
        try:
            end, i = time.time() + self.seconds, 0
            while time.time() < end:
                data = os.urandom(65536)
                t = time.time()
                c = Client(self.port, timeout=30)
                assert c.handshake(self.vdi, meta=False) == 0, 'GO refused'
                off = (i % 64) * 65536
                assert c.write(off, data)[1] == 0, 'write failed'
                assert c.read(off, 65536)[2] == data, 'read back differs'
                c.disc()
                self.lat.append(time.time() - t)
                i += 1
                time.sleep(0.05)
        except Exception as e:
            self.err = '%s: %s' % (type(e).__name__, e)


class QemuWorker(threading.Thread):
    """qemu-io over TLS-PSK, one process a round: write a pattern, read it back"""
    def __init__(self, port, vdi, seconds, psk_dir):
        threading.Thread.__init__(self)
        self.port, self.vdi, self.seconds, self.psk_dir = port, vdi, seconds, psk_dir
        self.lat, self.err = [], None

    def run(self):
        obj = 'tls-creds-psk,id=tls0,endpoint=client,dir=%s,username=alice' % self.psk_dir
        img = 'driver=nbd,host=127.0.0.1,port=%d,export=%s,tls-creds=tls0' % (self.port, self.vdi)
        end, i = time.time() + self.seconds, 0
        while time.time() < end and not self.err:
            pat, off = 0x11 + i % 200, (i % 64) * 65536
            t = time.time()
            p = subprocess.run(['qemu-io', '--object', obj, '--image-opts', img, '-c',
                                'write -P %d %d 64k' % (pat, off), '-c', 'read -P %d %d 64k' % (pat, off)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            out = p.stdout.decode(errors='replace')
            if p.returncode or 'fail' in out or 'rror' in out:
                self.err = 'qemu-io round %d: %s' % (i, out.strip())
            self.lat.append(time.time() - t)
            i += 1
            time.sleep(0.05)


def staller(port, attacker):
    """a raw connection from the attacker address"""
    s = socket.socket()
    s.bind((attacker, 0))
    s.setblocking(False)
    try:
        s.connect(('127.0.0.1', port))
    except BlockingIOError:
        pass
    return s


def stall_bytes(kind, tls):
    """what a staller sends before it goes silent"""
    flags = struct.pack('>I', 3)
    starttls = flags + struct.pack('>QII', IHAVEOPT, OPT_STARTTLS, 0)
    if kind == 0:
        return b''                                        # nothing at all
    if kind == 1:
        return flags[:2]                                  # half the client flags
    if kind == 2:
        return flags + struct.pack('>Q', IHAVEOPT)        # half an option header
    if kind == 3:
        return flags + struct.pack('>QII', IHAVEOPT, OPT_GO, 64) + b'\0' * 10   # GO, 10 of 64 bytes
    if tls and kind == 5:
        return starttls + b'\x16\x03\x01\x02'             # STARTTLS, then half a TLS record header
    return starttls                                       # STARTTLS (plain: refused), then nothing


def negotiated(port, vdi, attacker, n):
    """n connections from the attacker address in transmission"""
    out = []
    for _ in range(n):
        c = Client(port, source=attacker)
        assert c.handshake(vdi, structured=False, meta=False) == 0, 'GO refused'
        out.append(c)
    return out


def is_closed(s):
    """the sheep closed it: what it sent, then the end (or a reset)"""
    s.setblocking(False)
    try:
        while True:
            if s.recv(1 << 20) == b'':
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def setup_transmission(port, vdi, attacker):
    """10 idle connections, 40 stalled in a request, 1 with 8 MiB of replies it does not read"""
    idle = negotiated(port, vdi, attacker, 10)
    midreq = negotiated(port, vdi, attacker, 40)
    unread = negotiated(port, vdi, attacker, 1)[0]
    for i in range(8):
        unread.request(CMD_READ, i << 20, 1 << 20)
    for i, c in enumerate(midreq):
        if i % 2:
            c.send(struct.pack('>IHHQ', REQMAGIC, 0, CMD_READ, 1))           # half a header
        else:
            c.send(struct.pack('>IHHQQI', REQMAGIC, 0, CMD_WRITE, 1, 0, 65536) + b'x' * 1000)
    return idle, midreq, unread


def check_transmission(idle, midreq, unread):
    mid_closed = sum(is_closed(c.s) for c in midreq)
    idle_ok = unread_ok = 0
    for c in idle:
        try:
            c.s.setblocking(True)
            idle_ok += c.read(0, 4096)[1] == 0
        except Exception:
            pass
    unread.s.setblocking(True)
    for i in range(8):
        try:
            unread_ok += unread.reply(1 << 20)[1] == 0
        except Exception:
            break
    for c in idle + midreq + [unread]:
        c.close()
    return mid_closed, idle_ok, unread_ok


def run(port, pid, log, attacker, vdi, psk_dir=None, total=1100, seconds=14):
    tls = psk_dir is not None
    log_before, cpu_before, rss_before = os.path.getsize(log), cpu_s(pid), rss_mib(pid)
    idle, midreq, unread = setup_transmission(port, vdi, attacker) if not tls else ([], [], None)
    w = QemuWorker(port, vdi, seconds, psk_dir) if tls else PlainWorker(port, vdi, seconds)
    w.start()
    socks = [staller(port, attacker) for _ in range(total)]
    time.sleep(0.5)
    for i, s in enumerate(socks):
        try:
            s.send(stall_bytes(i % 6, tls))
        except OSError:
            pass
    peak = rss_mib(pid)
    while w.is_alive():
        peak = max(peak, rss_mib(pid))
        time.sleep(0.2)
    w.join()
    time.sleep(TIMEOUT_S + 1.5)                 # every stall is past its timeout
    closed = sum(is_closed(s) for s in socks)
    for s in socks:
        s.close()
    mid_closed, idle_ok, unread_ok = check_transmission(idle, midreq, unread) if unread else (0, 0, 0)
    if w.err:
        sys.exit('the other client failed: %s' % w.err)
    lat = sorted(w.lat)
    grew = os.path.getsize(log) - log_before
    report('nbd-stalled' + ('-tls' if tls else ''), connections=total, closed_by_sheep=closed,
           other_client='qemu-io/TLS' if tls else 'nbdproto', rounds=len(lat),
           median_ms='%.1f' % (lat[len(lat) // 2] * 1000), max_ms='%.1f' % (lat[-1] * 1000),
           mid_request_closed='%d/%d' % (mid_closed, len(midreq)), idle_kept='%d/%d' % (idle_ok, len(idle)),
           unread_replies_kept='%d/%d' % (unread_ok, 8 if unread else 0),
           sheep_cpu_s='%.2f' % (cpu_s(pid) - cpu_before), log_growth_bytes=grew,
           rss_before_mib='%.1f' % rss_before, rss_peak_mib='%.1f' % peak, rss_after_mib='%.1f' % rss_mib(pid))
    bad = []
    if lat[-1] > (4.0 if tls else 2.0) or len(lat) < (5 if tls else 20):
        bad.append('other client too slow: max %.2f s over %d rounds' % (lat[-1], len(lat)))
    if grew > 256 * 1024:
        bad.append('log grew %d bytes' % grew)
    if closed < total:
        bad.append('only %d of %d stalled connections closed' % (closed, total))
    if unread and (mid_closed != len(midreq) or idle_ok != len(idle) or unread_ok != 8):
        bad.append('mid-request closed %d/%d, idle kept %d/%d, unread replies %d/8' %
                   (mid_closed, len(midreq), idle_ok, len(idle), unread_ok))
    if peak - rss_before > 150:
        bad.append('RSS grew %.0f MiB' % (peak - rss_before))
    if bad:
        sys.exit('; '.join(bad))


def readflood(port, pid, vdi, conns=8, each=16):
    before = rss_mib(pid)
    floods = []
    for _ in range(conns):
        c = Client(port)
        assert c.handshake(vdi, structured=False, meta=False) == 0, 'GO refused'
        for i in range(each):
            c.request(CMD_READ, (i % 2) << 25, 32 << 20)
        floods.append(c)
    w = PlainWorker(port, vdi, 4)
    w.start()
    peak = rss_mib(pid)
    while w.is_alive():
        peak = max(peak, rss_mib(pid))
        time.sleep(0.1)
    for c in floods:
        c.close()
    if w.err:
        sys.exit('the other client failed beside the READ flood: %s' % w.err)
    lat = sorted(w.lat)
    report('nbd-readflood', connections=conns, reads_each=each, requested_mib=conns * each * 32,
           rss_before_mib='%.1f' % before, rss_peak_mib='%.1f' % peak, other_rounds=len(lat),
           other_median_ms='%.1f' % (lat[len(lat) // 2] * 1000), other_max_ms='%.1f' % (lat[-1] * 1000))
    # each connection may hold one request past the node-wide bound: 8 x 32 MiB, plus the bound
    if peak - before > 8 * 32 + 64 + 100:
        sys.exit('RSS grew %.0f MiB' % (peak - before))
    if lat[-1] > 2.0:
        sys.exit('the other client took %.2f s' % lat[-1])


if __name__ == '__main__':
    a = sys.argv[1:]
    if a[0] == 'readflood':
        readflood(int(a[1]), int(a[2]), a[3])
        sys.exit(0)
    run(int(a[0]), int(a[1]), a[2], a[3], a[4], a[5] if len(a) > 5 else None)
