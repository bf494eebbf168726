# lifecycle_model.py: model-based random test of the VDI lifecycle. A seeded sequence of writes,
# reads, snapshots, clones, rollbacks, deletes and resizes runs through collie against a live
# cluster and against an in-memory model of every VDI and snapshot; after every step the touched
# VDI is read back and compared, and after every step that can free objects the stores must hold
# exactly the objects that live inodes reference (no leak, no early free), each on COPIES nodes.
# Usage: python3 lifecycle_model.py COLLIE PORT STORE_DIR[,STORE_DIR...] COPIES SEED[,SEED...] OPS
import os
import random
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdproto  # noqa: E402

# exit statuses (collie(8))
EXIT_FAILED, EXIT_EXISTS, EXIT_MISSING = 1, 3, 5
MIB = 1 << 20
SHIFT = 20                      # 1 MiB objects keep copy-on-write cheap
NAMES = 5                       # names per seed
TAGS = 6                        # tags per name (reused on purpose: existing-tag errors)
MAX_SIZE = 2 * MIB + 512 * 1024   # up to three objects, the last one partial
INODE_HDR = 4664
VDI_BIT = 1 << 63


class Failure(Exception):
    pass


class Cluster:
    def __init__(self, collie, port, stores, copies):
        self.collie, self.port, self.stores, self.copies = collie, port, stores, copies
        self.calls = 0
        self.refusals = 0
        self.times, self.counts = {}, {}
        self.conns = {}
        self.inode_cache = {}     # (oid, mtime_ns, size) -> (live, [referenced oids])

    def run(self, args, data=None, port=None):
        self.calls += 1
        t0 = time.monotonic()
        p = subprocess.run([self.collie] + args + ['-p', str(port or self.port)], input=data,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        key = args[1] + ('/fail' if p.returncode else '')
        self.times[key] = self.times.get(key, 0) + time.monotonic() - t0
        self.counts[key] = self.counts.get(key, 0) + 1
        return p.returncode, p.stdout, p.stderr.decode(errors='replace')

    def ok(self, args, data=None, port=None):
        rc, out, err = self.run(args, data, port)
        if rc != 0:
            raise Failure('collie %s: exit %d: %s' % (' '.join(args), rc, err.strip()))
        return out

    def refused(self, args, data=None, want=(EXIT_FAILED,)):
        """the command fails with one line and one of the exit statuses want (collie(8))"""
        self.refusals += 1
        rc, out, err = self.run(args, data)
        lines = [l for l in err.splitlines() if l.strip()]
        if rc not in want or len(lines) != 1 or not lines[0].startswith('collie: '):
            raise Failure('collie %s should fail with one line and exit %s: exit %d, stderr %r'
                          % (' '.join(args), ' or '.join(map(str, want)), rc, err))

    def proto_read(self, name, tag, port, off=0, length=None):
        """the whole VDI through the protocol (GET_VDI_INFO, the inode, then each object from its
        owner), independently of collie's read path; None if the lookup fails"""
        t0 = time.monotonic()
        try:
            return self._proto_read(name, tag, port, off, length)
        finally:
            self.times['(read)'] = self.times.get('(read)', 0) + time.monotonic() - t0
            self.counts['(read)'] = self.counts.get('(read)', 0) + 1

    def _proto_read(self, name, tag, port, off, length):
        conn = self.conns.get(port)
        if conn is None:
            conn = self.conns[port] = sdproto.Conn(port)
            conn._recv = lambda n, s=conn.s: recv_exact(s, n)
        payload = name.encode().ljust(256, b'\0') + (tag or '').encode().ljust(256, b'\0')
        r = conn.exchange(sdproto.req(0x14, flags=1, data_length=512, union=sdproto.vdi_union()), payload)
        if r['result']:
            return None
        vid, = struct.unpack_from('<I', r['raw'], 8)
        r = conn.exchange(sdproto.req(0x02, data_length=INODE_HDR, union=sdproto.obj_union(VDI_BIT | vid << 32)))
        hdr = r['data']
        size, = struct.unpack_from('<Q', hdr, 536)
        shift = hdr[555] or 22
        nr = (size + (1 << shift) - 1) >> shift
        r = conn.exchange(sdproto.req(0x02, data_length=4 * nr,
                                      union=sdproto.obj_union(VDI_BIT | vid << 32, offset=INODE_HDR)))
        index = struct.unpack('<%dI' % nr, r['data'].ljust(4 * nr, b'\0'))
        end = size if length is None else min(size, off + length)
        out = bytearray()
        for i, owner in enumerate(index):
            o_start, o_end = i << shift, min(size, (i + 1) << shift)
            a, b = max(o_start, off), min(o_end, end)
            if a >= b:
                continue
            if not owner:
                out += bytes(b - a)
                continue
            r = conn.exchange(sdproto.req(0x02, data_length=b - a,
                                          union=sdproto.obj_union(owner << 32 | i, offset=a - o_start)))
            if r['result']:
                raise Failure('reading object %x:%d of %s: result %#x' % (owner, i, name, r['result']))
            out += r['data'].ljust(b - a, b'\0')
        return bytes(out)

    def store_objects(self):
        """{oid: [store index, ...]} over every node's store"""
        where = {}
        for i, d in enumerate(self.stores):
            for f in os.listdir(os.path.join(d, 'obj')):
                if len(f) == 16:
                    where.setdefault(int(f, 16), []).append(i)
        return where

    def check_objects(self):
        t0 = time.monotonic()
        try:
            self._check_objects()
        finally:
            self.times['(objects)'] = self.times.get('(objects)', 0) + time.monotonic() - t0
            self.counts['(objects)'] = self.counts.get('(objects)', 0) + 1

    def _check_objects(self):
        where = self.store_objects()
        want = set()
        for oid, nodes in where.items():
            if not oid & VDI_BIT:
                continue
            want.add(oid)
            path = os.path.join(self.stores[nodes[0]], 'obj', '%016x' % oid)
            st = os.stat(path)
            key = (oid, st.st_mtime_ns, st.st_size, st.st_ino)
            refs = self.inode_cache.get(key)
            if refs is None:
                refs = self.inode_cache[key] = inode_references(path)
            want.update(refs)
        have = set(where)
        if have - want:
            raise Failure('leaked objects (stored, referenced by no live VDI): %s'
                          % ' '.join('%016x' % o for o in sorted(have - want)))
        if want - have:
            raise Failure('objects freed too early (referenced, not stored): %s'
                          % ' '.join('%016x' % o for o in sorted(want - have)))
        for oid in want:
            if len(where[oid]) != self.copies:
                raise Failure('object %016x has %d copies, not %d' % (oid, len(where[oid]), self.copies))


def inode_references(path):
    """the data objects an inode file references (none for a tombstone)"""
    with open(path, 'rb') as f:
        # an object file (sheep/store/checksum.c) starts with its own header: "SHEEPOBJ",
        # version, block shift, size (u64 at 16), data offset (u32 at 24)
        head = f.read(32)
        if head[:8] == b'SHEEPOBJ':
            data_offset, = struct.unpack_from('<I', head, 24)
            f.seek(data_offset)
        else:
            f.seek(0)
        hdr = f.read(INODE_HDR)
        if hdr[0] == 0:
            return []
        size, = struct.unpack_from('<Q', hdr, 536)
        shift = hdr[555] or 22
        nr = (size + (1 << shift) - 1) >> shift
        index = struct.unpack('<%dI' % nr, f.read(4 * nr).ljust(4 * nr, b'\0'))
        return [owner << 32 | i for i, owner in enumerate(index) if owner]


def recv_exact(sock, n):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if not k:
            raise EOFError('connection closed')
        got += k
    return bytes(buf)


class Model:
    """name -> working VDI bytes; (name, tag) -> snapshot bytes"""

    def __init__(self):
        self.working = {}
        self.snaps = {}


def run_seed(c, seed, ops, log):
    rng = random.Random(seed)
    m = Model()
    names = ['s%dv%d' % (seed, i) for i in range(NAMES)]
    stats = {}

    def tags_of(name):
        return [t for (n, t) in m.snaps if n == name]

    def check_read(name, tag=None, via_collie=False, off=0, length=None):
        data = m.snaps[(name, tag)] if tag else m.working[name]
        port = c.port + rng.randrange(len(c.stores))
        if via_collie:
            out = c.ok(['vdi', 'read', name] + (['-s', tag] if tag else []), port=port)
        else:
            out = c.proto_read(name, tag, port, off, length)
            if out is None:
                raise Failure('%s%s: not found' % (name, ' -s ' + tag if tag else ''))
        want = memoryview(data)[off:] if length is None else memoryview(data)[off:off + length]
        if want != out:
            diff = next((i for i in range(min(len(out), len(want))) if out[i] != want[i]), min(len(out), len(want)))
            raise Failure('%s%s [%d, +%s): %d bytes read, model has %d; first difference at byte %d'
                          % (name, ' -s ' + tag if tag else '', off, length, len(out), len(want), off + diff))

    def check_list():
        rows = set()
        for line in c.ok(['vdi', 'list', '-r']).decode().splitlines():
            f = line.split(' ')
            if not f[1].startswith('s%dv' % seed):
                continue
            if f[0] == 's':
                rows.add((f[1], f[9]))
            else:
                rows.add((f[1], None))
        want = set((n, None) for n in m.working) | set(m.snaps)
        if rows != want:
            raise Failure('vdi list shows %s, model has %s' % (sorted(rows, key=str), sorted(want, key=str)))

    for step in range(ops):
        op = rng.choices(['create', 'write', 'read', 'snapshot', 'clone', 'rollback', 'delete', 'delsnap',
                          'resize', 'badwrite'], [6, 30, 8, 10, 5, 5, 4, 5, 5, 1])[0]
        # mostly names that exist (their errors are tested too, just less often)
        live = [n for n in names if n in m.working]
        name = rng.choice(live) if live and op not in ('create', 'clone') and rng.random() < 0.9 else rng.choice(names)
        desc = op + ' ' + name
        stats[op] = stats.get(op, 0) + 1
        freed = False
        full_check = True
        refusals = c.refusals
        try:
            if op == 'create':
                size = rng.randrange(1, MAX_SIZE // 4096 + 1) * 4096
                desc += ' %d' % size
                if name in m.working:
                    c.refused(['vdi', 'create', name, str(size), '-z', str(SHIFT)], want=(EXIT_EXISTS,))
                else:
                    c.ok(['vdi', 'create', name, str(size), '-z', str(SHIFT)])
                    m.working[name] = bytearray(size)
            elif op == 'write':
                if name not in m.working:
                    c.refused(['vdi', 'write', name, '0', '1'], b'x', want=(EXIT_MISSING,))
                    continue
                d = m.working[name]
                length = rng.choice([1, 512, 4096, rng.randrange(1, 65536)])
                length = min(length, len(d))
                off = rng.choice([rng.randrange(0, len(d) - length + 1),
                                  max(0, min(len(d) - length, (rng.randrange(0, 3) + 1) * MIB - length // 2))])
                data = bytes(length) if rng.random() < 0.1 else rng.randbytes(length)
                desc += ' %d+%d' % (off, length)
                c.ok(['vdi', 'write', name, str(off), str(length)], data)
                d[off:off + length] = data
                # the written range (and, now and then, the whole VDI below) reads back
                check_read(name, None, False, off, length)
                full_check = rng.random() < 0.25
            elif op == 'read':
                tags = tags_of(name)
                if tags and rng.random() < 0.5:
                    tag = rng.choice(tags)
                    desc += ' -s ' + tag
                    check_read(name, tag, True)
                elif name in m.working:
                    check_read(name, None, True)
                else:
                    c.refused(['vdi', 'read', name], want=(EXIT_MISSING,))
                continue
            elif op == 'snapshot':
                tag = 't%d' % rng.randrange(TAGS)
                desc += ' -s ' + tag
                if name not in m.working or (name, tag) in m.snaps:
                    c.refused(['vdi', 'snapshot', name, '-s', tag],
                              want=(EXIT_MISSING,) if name not in m.working else (EXIT_EXISTS,))
                else:
                    c.ok(['vdi', 'snapshot', name, '-s', tag])
                    m.snaps[(name, tag)] = bytearray(m.working[name])
                    check_read(name, tag)
            elif op == 'clone':
                src = rng.choice(names)
                tags = tags_of(src)
                tag = rng.choice(tags) if tags and rng.random() < 0.97 else 'nosuch'
                desc = 'clone %s -s %s %s' % (src, tag, name)
                if (src, tag) not in m.snaps or name in m.working:
                    c.refused(['vdi', 'clone', src, name, '-s', tag],
                              want=(EXIT_EXISTS,) if (src, tag) in m.snaps else
                              (EXIT_MISSING,) if name not in m.working else (EXIT_MISSING, EXIT_EXISTS))
                else:
                    c.ok(['vdi', 'clone', src, name, '-s', tag])
                    m.working[name] = bytearray(m.snaps[(src, tag)])
            elif op == 'rollback':
                tags = tags_of(name)
                tag = rng.choice(tags) if tags and rng.random() < 0.97 else 'nosuch'
                desc += ' -s ' + tag
                if name not in m.working or (name, tag) not in m.snaps:
                    c.refused(['vdi', 'rollback', name, '-s', tag], want=(EXIT_MISSING,))
                else:
                    c.ok(['vdi', 'rollback', name, '-s', tag])
                    m.working[name] = bytearray(m.snaps[(name, tag)])
                    freed = True
            elif op == 'delete':
                if name not in m.working:
                    c.refused(['vdi', 'delete', name], want=(EXIT_MISSING,))
                    continue
                c.ok(['vdi', 'delete', name])
                del m.working[name]
                freed = True
            elif op == 'delsnap':
                tags = tags_of(name)
                tag = rng.choice(tags) if tags and rng.random() < 0.97 else 'nosuch'
                desc += ' -s ' + tag
                if (name, tag) not in m.snaps:
                    c.refused(['vdi', 'delete', name, '-s', tag], want=(EXIT_MISSING,))
                    continue
                c.ok(['vdi', 'delete', name, '-s', tag])
                del m.snaps[(name, tag)]
                freed = True
            elif op == 'resize':
                if name not in m.working:
                    c.refused(['vdi', 'resize', name, '1M'], want=(EXIT_MISSING,))
                    continue
                d = m.working[name]
                size = rng.randrange(1, MAX_SIZE // 4096 + 1) * 4096
                desc += ' %d -> %d' % (len(d), size)
                rc, out, err = c.run(['vdi', 'resize', name, str(size)])
                if size >= len(d):
                    if rc:
                        raise Failure('growing failed: ' + err)
                    d.extend(bytes(size - len(d)))
                elif any(d[size:]):
                    # data past the new end: the shrink must be refused
                    if rc != 1:
                        raise Failure('shrinking over data was allowed (exit %d)' % rc)
                elif rc == 0:
                    del d[size:]
                elif rc != 1 or not err.startswith('collie: '):
                    raise Failure('resize: exit %d: %s' % (rc, err))
            elif op == 'badwrite':
                tags = tags_of(name)
                if not tags:
                    continue
                tag = rng.choice(tags)
                desc += ' -s ' + tag
                c.refused(['vdi', 'write', name, '-s', tag, '0', '1'], b'x')
                check_read(name, tag)
                continue
            # a refused command must change nothing: checked some of the time, to save time
            if name in m.working and full_check and (c.refusals == refusals or rng.random() < 0.3):
                check_read(name)
            if freed:
                c.check_objects()
            if step % 100 == 99:
                check_list()
        except Failure as e:
            raise Failure('seed %d step %d (%s): %s' % (seed, step, desc, e))
        finally:
            if os.environ.get('VERBOSE'):
                log.write('%d: %s\n' % (step, desc))
    # the end: everything matches, then deleting it all leaves only tombstones
    try:
        check_list()
        for name in list(m.working):
            check_read(name)
        for (name, tag) in list(m.snaps):
            check_read(name, tag)
        for (name, tag) in list(m.snaps):
            c.ok(['vdi', 'delete', name, '-s', tag])
            del m.snaps[(name, tag)]
            c.check_objects()
        for name in list(m.working):
            c.ok(['vdi', 'delete', name])
            del m.working[name]
            c.check_objects()
        check_list()
    except Failure as e:
        raise Failure('seed %d at the end: %s' % (seed, e))
    log.write('seed %d: %d ops %s\n' % (seed, ops, ' '.join('%s=%d' % kv for kv in sorted(stats.items()))))


def main():
    collie, port, stores, copies, seeds, ops = sys.argv[1:7]
    c = Cluster(collie, int(port), stores.split(','), int(copies))
    try:
        for seed in [int(s) for s in seeds.split(',')]:
            run_seed(c, seed, int(ops), sys.stdout)
            sys.stdout.flush()
    except Failure as e:
        print('FAIL: %s' % e, file=sys.stderr)
        return 1
    import resource
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print('CPU seconds: model %.1f, collie %.1f' % (me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime))
    print('%d collie calls; seconds per command: %s' % (c.calls, ' '.join(
        '%s=%d/%.1fs' % (k, c.counts[k], c.times[k]) for k in sorted(c.times))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
