# abuse.py: the abuse cases of the limits (sheep(8), LIMITS) as a hostile client would run them,
# each while a well-behaved client keeps working; prints the figures and fails past the bounds.
#   abuse.py stalled PORT PID LOG ATTACKER_ADDR   1100 half-header connections
#   abuse.py readvdis PORT PID                    600 pipelined READ_VDIS never read, on 3 connections
#   abuse.py gethash PORT PID OID                 GET_HASH of a 2 GiB object
#   abuse.py lockflood PORT                       6000 LOCK_VDI from one client while another locks
#   abuse.py futureepoch PORT EPOCH               64 WRITE_PEER of a future epoch beside a guest
#   abuse.py clusterqueue PORT                    128 NEW_VDI at once past a small cluster queue
#                                                 (SHEEPFOLD_TEST_CLUSTER_QUEUE): busy, then retried
import os
import socket
import struct
import sys
import threading
import time
from sdproto import Conn, req, obj_union, vdi_union
from sdguest import Guest, names

MiB = 1 << 20


def rss_mib(pid):
    for line in open('/proc/%d/status' % pid):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024.0
    return 0.0


def cpu_s(pid):
    f = open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')


class Worker(threading.Thread):
    """a guest writing and reading 64 KiB, and opening a fresh connection every round"""
    def __init__(self, port, vdi, seconds):
        threading.Thread.__init__(self)
        self.port, self.vdi, self.seconds = port, vdi, seconds
        self.lat, self.err = [], None

    def run(self):
        try:
            g = Guest(self.port).open(self.vdi)
            end = time.time() + self.seconds
            i = 0
            while time.time() < end:
                data = os.urandom(65536)
                t = time.time()
                g.write((i % 64) * 65536, data)
                ok = g.read((i % 64) * 65536, 65536) == data
                c = Conn(self.port)
                r = c.exchange(req(0x18))
                c.close()
                self.lat.append(time.time() - t)
                if not ok or r['result']:
                    raise RuntimeError('round %d: read back differs or GET_CLUSTER_DEFAULT 0x%x' % (i, r['result']))
                i += 1
                time.sleep(0.05)
            g.close()
        except Exception as e:
            self.err = e


def report(what, **figures):
    print('FIGURES %s: %s' % (what, ', '.join('%s=%s' % kv for kv in figures.items())))
    sys.stdout.flush()


def stalled(port, pid, log, attacker, total=1100, seconds=12):
    log_before, cpu_before = os.path.getsize(log), cpu_s(pid)
    w = Worker(port, 'work', seconds)
    w.start()
    socks = []
    for _ in range(total):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((attacker, port))
        except BlockingIOError:
            pass
        socks.append(s)
    time.sleep(0.5)
    half = req(0x02, data_length=4096)[:24]
    for s in socks:
        try:
            s.send(half)
        except OSError:
            pass
    w.join()
    closed = 0
    for s in socks:
        try:
            closed += s.recv(1) == b''
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    if w.err:
        sys.exit('the working client failed: %s' % w.err)
    lat = sorted(w.lat)
    grew = os.path.getsize(log) - log_before
    report('stalled', connections=total, closed_by_sheep=closed, rounds=len(lat),
           median_ms='%.1f' % (lat[len(lat) // 2] * 1000), max_ms='%.1f' % (lat[-1] * 1000),
           sheep_cpu_s='%.2f' % (cpu_s(pid) - cpu_before), log_growth_bytes=grew, rss_mib='%.1f' % rss_mib(pid))
    if lat[-1] > 2.0 or len(lat) < 20:
        sys.exit('working client too slow: max %.2f s over %d rounds' % (lat[-1], len(lat)))
    if grew > 256 * 1024:
        sys.exit('log grew %d bytes' % grew)
    if closed < total - 300:
        sys.exit('only %d of %d stalled connections closed' % (closed, total))


def readvdis(port, pid, count=600, conns=3):
    """count pipelined READ_VDIS on each of conns connections that never read a reply"""
    before = rss_mib(pid)
    wire = b''.join(req(0x15, data_length=SD_NR_VDIS_BYTES, req_id=i + 1) for i in range(count))
    floods, sent = [], 0
    for _ in range(conns):
        c = Conn(port)
        c.s.setblocking(False)
        floods.append(c)
        done, deadline = 0, time.time() + 3
        while done < len(wire) and time.time() < deadline:
            try:
                done += c.s.send(wire[done:])
            except BlockingIOError:
                time.sleep(0.05)
        sent += done
    time.sleep(2)
    peak = rss_mib(pid)
    w = Worker(port, 'work', 2)
    w.run()
    for c in floods:
        c.close()
    if w.err:
        sys.exit('the working client failed beside the READ_VDIS flood: %s' % w.err)
    report('readvdis', connections=conns, requests_each=count, sent_bytes=sent, rss_before_mib='%.1f' % before,
           rss_during_mib='%.1f' % peak, other_max_ms='%.1f' % (max(w.lat) * 1000))
    if peak - before > 200:
        sys.exit('RSS grew %.0f MiB' % (peak - before))


SD_NR_VDIS_BYTES = (1 << 24) // 8


def gethash(port, pid, oid):
    peak = [rss_mib(pid)]
    before = peak[0]
    done = []

    def sample():
        while not done:
            peak[0] = max(peak[0], rss_mib(pid))
            time.sleep(0.01)
    t = threading.Thread(target=sample)
    t.start()
    c = Conn(port)
    start = time.time()
    r = c.exchange(req(0xB4, data_length=8, union=obj_union(oid)))
    secs = time.time() - start
    done.append(1)
    t.join()
    if r['result']:
        sys.exit('GET_HASH: result 0x%x' % r['result'])
    crc, size = struct.unpack('<II', r['data'])
    report('gethash', object_bytes=size, seconds='%.2f' % secs, rss_before_mib='%.1f' % before,
           rss_peak_mib='%.1f' % peak[0])
    if size != 1 << 31 or peak[0] - before > 100:
        sys.exit('size %d, RSS grew %.0f MiB' % (size, peak[0] - before))


def lockflood(port, count=6000):
    flood = Conn(port)
    wire = b''.join(req(0x12, flags=1, data_length=512, req_id=i + 1, union=vdi_union()) + names('flood')
                    for i in range(count))
    answers = {}

    def reader():
        for _ in range(count):
            r = flood.recv_rsp()
            answers[r['result']] = answers.get(r['result'], 0) + 1
    rt = threading.Thread(target=reader)
    rt.start()
    st = threading.Thread(target=lambda: flood.s.sendall(wire))
    st.start()
    time.sleep(0.3)
    g = Guest(port)
    lat = []
    for _ in range(20):
        t = time.time()
        vid = g.lookup('victim', lock=True)
        g.call('release', 0x13, 1, 512, vdi_union(base=vid), names('victim'))
        lat.append(time.time() - t)
    flood_done = rt.is_alive()
    st.join()
    rt.join(120)
    if rt.is_alive():
        sys.exit('LOCK_VDI flood: %d of %d answered' % (sum(answers.values()), count))
    report('lockflood', flood=count, answered=sum(answers.values()), results=answers,
           victim_max_ms='%.1f' % (max(lat) * 1000), victim_median_ms='%.1f' % (sorted(lat)[10] * 1000),
           flood_still_running_while_measured=flood_done)
    if max(lat) > 0.5:
        sys.exit('a lock behind the flood took %.2f s' % max(lat))


def futureepoch(port, epoch, count=64):
    c = Conn(port)
    oid = 1 << 32     # any object: the epoch is checked first
    for i in range(count):
        c.send(req(0xA5, flags=1, epoch=epoch + 5, data_length=512, req_id=i + 1, union=obj_union(oid)) + b'z' * 512)
    time.sleep(0.2)
    w = Worker(port, 'work', 2)
    w.run()
    if w.err:
        sys.exit('the working client failed beside the future-epoch writes: %s' % w.err)
    start = time.time()
    results = {}
    for _ in range(count):
        r = c.recv_rsp()
        results[r['result']] = results.get(r['result'], 0) + 1
    report('futureepoch', requests=count, results=results, other_max_ms='%.1f' % (max(w.lat) * 1000),
           answers_after_s='%.2f' % (time.time() - start + 2.2))
    if max(w.lat) > 1.0 or results != {0x82: count}:
        sys.exit('other client max %.2f s; results %s' % (max(w.lat), results))


def clusterqueue(port, conns=16, each=8):
    """each of conns connections pipelines `each` NEW_VDI: every one is answered, success or AGAIN
    (busy), never dropped; a client that retries the busy ones gets them all created"""
    AGAIN = 0x8F
    create = lambda name, rid: (req(0x11, flags=1, data_length=256, req_id=rid, union=vdi_union(size=MiB)),
                                names(name)[:256])
    cs = [Conn(port) for _ in range(conns)]
    for k, c in enumerate(cs):
        c.send(b''.join(h + p for h, p in (create('q-%d-%d' % (k, i), i + 1) for i in range(each))))
    results, busy = {}, []
    for k, c in enumerate(cs):
        for _ in range(each):
            r = c.recv_rsp()
            results[r['result']] = results.get(r['result'], 0) + 1
            if r['result'] == AGAIN:
                busy.append('q-%d-%d' % (k, r['id'] - 1))
        c.close()
    answered = sum(results.values())
    retries, c = 0, Conn(port)
    for name in busy:
        for attempt in range(100):
            r = c.exchange(*create(name, 1))
            retries += 1
            if r['result'] != AGAIN:
                break
            time.sleep(0.02 * (attempt + 1))
        if r['result']:
            sys.exit('%s: retried %d times, last result 0x%x' % (name, attempt + 1, r['result']))
    c.close()
    report('clusterqueue', requests=conns * each, answered=answered, results=results, busy_retried=len(busy),
           retries=retries)
    if answered != conns * each or not results.get(AGAIN) or set(results) - {0, AGAIN}:
        sys.exit('answers %s of %d: want only success and at least one AGAIN' % (results, conns * each))


if __name__ == '__main__':
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == 'stalled':
        stalled(port, int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif cmd == 'readvdis':
        readvdis(port, int(sys.argv[3]))
    elif cmd == 'gethash':
        gethash(port, int(sys.argv[3]), int(sys.argv[4], 16))
    elif cmd == 'lockflood':
        lockflood(port)
    elif cmd == 'clusterqueue':
        clusterqueue(port)
    elif cmd == 'futureepoch':
        futureepoch(port, int(sys.argv[3]))
