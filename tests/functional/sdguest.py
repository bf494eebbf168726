# sdguest.py: the guest flow of the sheepdog protocol in Python, written from protocol.md alone
# (as a third-party client would be): LOCK_VDI or GET_VDI_INFO to a vid, READ_OBJ of the inode,
# reads from the owner named in data_vdi_id, first writes with CREATE_AND_WRITE_OBJ (+COW from
# the parent's object) followed by the 4-byte data_vdi_id update, DISCARD_OBJ, FLUSH_VDI,
# RELEASE_VDI; snapshots and clones through NEW_VDI.
import struct
import time
from sdproto import Conn, req, obj_union, vdi_union, redundancy

OP_CREATE_AND_WRITE, OP_READ, OP_WRITE, OP_DISCARD = 0x01, 0x02, 0x03, 0x05
OP_NEW_VDI, OP_LOCK_VDI, OP_RELEASE_VDI, OP_GET_VDI_INFO, OP_FLUSH_VDI = 0x11, 0x12, 0x13, 0x14, 0x16
F_WRITE, F_COW = 0x01, 0x02
RES_VDI_LOCKED = 0x07
HDR_SIZE = 4664
VDI_BIT = 1 << 63


class SdError(Exception):
    def __init__(self, what, result):
        Exception.__init__(self, '%s: result 0x%x' % (what, result))
        self.result = result


def names(name, tag=''):
    return name.encode().ljust(256, b'\0') + tag.encode().ljust(256, b'\0')


class Guest:
    def __init__(self, port, host='127.0.0.1'):
        self.c = Conn(port, host)
        self.rid = 0

    def call(self, what, opcode, flags=0, data_length=0, union=b'', payload=b''):
        self.rid += 1
        r = self.c.exchange(req(opcode, flags=flags, data_length=data_length, req_id=self.rid, union=union), payload)
        if r['result']:
            raise SdError(what, r['result'])
        return r

    def lookup(self, name, tag='', lock=False, snapid=0):
        for attempt in range(50):
            try:
                r = self.call('lookup ' + name, OP_LOCK_VDI if lock else OP_GET_VDI_INFO, F_WRITE, 512,
                              vdi_union(snapid=snapid), names(name, tag))
                return struct.unpack_from('<I', r['raw'], 8)[0]
            except SdError as e:
                # a guest that just let go may still hold the lock for a moment
                if e.result != RES_VDI_LOCKED or attempt == 49:
                    raise
                time.sleep(0.1)

    def open(self, name, tag='', writable=True):
        self.name = name
        self.locked = writable and not tag
        self.vid = self.lookup(name, tag, lock=self.locked)
        hdr = self.call('inode', OP_READ, 0, HDR_SIZE, obj_union(VDI_BIT | self.vid << 32))['data']
        self.size, = struct.unpack_from('<Q', hdr, 536)
        self.copies = hdr[554]
        self.shift = hdr[555] or 22
        self.snap_ctime, = struct.unpack_from('<Q', hdr, 520)
        self.obj = 1 << self.shift
        self.nr = (self.size + self.obj - 1) // self.obj
        idx = self.call('index', OP_READ, 0, self.nr * 4, obj_union(VDI_BIT | self.vid << 32, offset=HDR_SIZE))['data']
        self.index = list(struct.unpack('<%dI' % self.nr, idx.ljust(self.nr * 4, b'\0')))
        return self

    def pieces(self, off, length):
        while length:
            idx, o = off // self.obj, off % self.obj
            n = min(length, self.obj - o)
            yield idx, o, n
            off += n
            length -= n

    def read(self, off, length):
        out = b''
        for idx, o, n in self.pieces(off, length):
            owner = self.index[idx]
            if not owner:
                out += b'\0' * n
                continue
            d = self.call('read', OP_READ, 0, n, obj_union(owner << 32 | idx, copies=self.copies, offset=o))['data']
            out += d.ljust(n, b'\0')
        return out

    def write(self, off, data):
        pos = 0
        for idx, o, n in self.pieces(off, len(data)):
            piece = data[pos:pos + n]
            pos += n
            oid = self.vid << 32 | idx
            owner = self.index[idx]
            if owner == self.vid:
                self.call('write', OP_WRITE, F_WRITE, n, obj_union(oid, copies=self.copies, offset=o), piece)
                continue
            flags, cow = F_WRITE, 0
            if owner:
                flags, cow = F_WRITE | F_COW, owner << 32 | idx
            self.call('create', OP_CREATE_AND_WRITE, flags, n, obj_union(oid, cow_oid=cow, copies=self.copies, offset=o),
                      piece)
            self.call('inode update', OP_WRITE, F_WRITE, 4,
                      obj_union(VDI_BIT | self.vid << 32, copies=self.copies, offset=HDR_SIZE + 4 * idx),
                      struct.pack('<I', self.vid))
            self.index[idx] = self.vid

    def discard(self, idx):
        self.call('discard', OP_DISCARD, 0, 0, obj_union(self.vid << 32 | idx))
        self.index[idx] = 0

    def flush(self):
        self.call('flush', OP_FLUSH_VDI, 0, 0, obj_union(VDI_BIT | self.vid << 32))

    def close(self):
        if self.locked:
            self.call('release', OP_RELEASE_VDI, F_WRITE, 512, vdi_union(base=self.vid), names(self.name))
        self.c.close()

    def snapshot(self, tag):
        """freeze the working VDI as snapshot TAG; the name, and this guest, move to a new working
        VDI that shares every object (its guest lock moves along where locks are kept)"""
        r = self.call('snapshot', OP_NEW_VDI, F_WRITE, 512, vdi_union(size=self.size, base=self.vid, snapid=1),
                      names(self.name, tag))
        new = struct.unpack_from('<I', r['raw'], 8)[0]
        self.vid = new          # the index still names the old id: first writes copy on write
        return new

    def clone(self, base_vid, name, size, spec=''):
        copies, policy = redundancy(spec) if spec else (0, 0)
        r = self.call('clone', OP_NEW_VDI, F_WRITE, 256,
                      vdi_union(size=size, base=base_vid, copies=copies, copy_policy=policy), names(name)[:256])
        return struct.unpack_from('<I', r['raw'], 8)[0]

    def create(self, name, size, spec=''):
        """NEW_VDI as QEMU's driver sends it, with its redundancy= option (N or D:P)"""
        copies, policy = redundancy(spec) if spec else (0, 0)
        r = self.call('create', OP_NEW_VDI, F_WRITE, 256, vdi_union(size=size, copies=copies, copy_policy=policy),
                      names(name)[:256])
        return struct.unpack_from('<I', r['raw'], 8)[0]
