# nbdproto.py: a small raw NBD client for tests (fixed newstyle, structured replies), written from the
# NBD protocol document. It sends exactly what it is told, so tests can also send what is wrong.
import socket
import struct

NBDMAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454F5054
REPMAGIC = 0x3e889045565a9
REQMAGIC = 0x25609513
SIMPLE = 0x67446698
STRUCT = 0x668e33ef
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO, OPT_STRUCTURED = 1, 2, 3, 5, 6, 7, 8
OPT_LIST_META, OPT_SET_META = 9, 10
REP_ACK, REP_SERVER, REP_INFO, REP_META = 1, 2, 3, 4
ERR_UNSUP, ERR_INVALID, ERR_UNKNOWN, ERR_TOO_BIG = 0x80000001, 0x80000003, 0x80000006, 0x80000009
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_CACHE, CMD_WZ, CMD_BS = range(8)
FLAG_FUA, FLAG_NO_HOLE, FLAG_DF, FLAG_REQ_ONE, FLAG_FAST_ZERO = 1, 2, 4, 8, 16
EPERM, EIO, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP = 1, 5, 22, 28, 75, 95
T_READ_ONLY = 1 << 1


class Closed(Exception):
    pass


class Client:
    def __init__(self, port, host='127.0.0.1', timeout=30, source=None):
        self.s = socket.create_connection((host, port), timeout=timeout,
                                          source_address=(source, 0) if source else None)
        self.structured = False
        self.cookie = 0
        magic, opt, flags = struct.unpack('>QQH', self.recv(18))
        assert magic == NBDMAGIC and opt == IHAVEOPT, 'bad greeting'
        self.hflags = flags

    def recv(self, n):
        buf = b''
        while len(buf) < n:
            c = self.s.recv(n - len(buf))
            if not c:
                raise Closed('connection closed after %d of %d bytes' % (len(buf), n))
            buf += c
        return buf

    def send(self, b):
        self.s.sendall(b)

    def client_flags(self, flags=3):
        self.send(struct.pack('>I', flags))

    def option(self, opt, data=b''):
        self.send(struct.pack('>QII', IHAVEOPT, opt, len(data)) + data)

    def opt_reply(self):
        magic, opt, typ, ln = struct.unpack('>QIII', self.recv(20))
        assert magic == REPMAGIC, 'bad option reply magic %x' % magic
        return opt, typ, self.recv(ln)

    def opt_replies(self, opt, data=b''):
        """send an option, gather replies up to the final one: [(type, data)]"""
        self.option(opt, data)
        out = []
        while True:
            o, typ, d = self.opt_reply()
            assert o == opt, 'reply for option %d, not %d' % (o, opt)
            out.append((typ, d))
            if typ == REP_ACK or typ & 0x80000000:
                return out

    def handshake(self, name, structured=True, meta=True, go=True):
        self.client_flags(3)
        if structured:
            r = self.opt_replies(OPT_STRUCTURED)
            assert r[-1][0] == REP_ACK
            self.structured = True
        if meta:
            nm = name.encode()
            q = b'base:allocation'
            r = self.opt_replies(OPT_SET_META, struct.pack('>I', len(nm)) + nm + struct.pack('>II', 1, len(q)) + q)
            assert r[-1][0] == REP_ACK
        if go:
            return self.go(name)

    def go(self, name, opt=OPT_GO):
        nm = name.encode()
        r = self.opt_replies(opt, struct.pack('>I', len(nm)) + nm + struct.pack('>HH', 1, 3))
        if r[-1][0] != REP_ACK:
            return r[-1][0]
        for typ, d in r:
            if typ == REP_INFO and struct.unpack('>H', d[:2])[0] == 0:
                self.size, self.tflags = struct.unpack('>QH', d[2:12])
        return 0

    def request(self, cmd, offset=0, length=0, flags=0, data=b'', cookie=None):
        if cookie is None:
            self.cookie += 1
            cookie = self.cookie
        self.send(struct.pack('>IHHQQI', REQMAGIC, flags, cmd, cookie, offset, length) + data)
        return cookie

    def reply(self, read_len=None):
        """one whole reply: (cookie, error, data or extents); read_len for simple READ replies"""
        magic = struct.unpack('>I', self.recv(4))[0]
        if magic == SIMPLE:
            err, cookie = struct.unpack('>IQ', self.recv(12))
            data = self.recv(read_len) if (read_len and not err) else b''
            return cookie, err, data
        assert magic == STRUCT, 'bad reply magic %x' % magic
        data, err, extents = b'', 0, []
        while True:
            flags, typ, cookie, ln = struct.unpack('>HHQI', self.recv(16))
            payload = self.recv(ln)
            if typ == 1:
                data += payload[8:]
            elif typ == 2:
                data += b'\0' * struct.unpack('>I', payload[8:12])[0]
            elif typ == 5:
                for i in range(4, ln, 8):
                    extents.append(struct.unpack('>II', payload[i:i + 8]))
            elif typ & 0x8000:
                err = struct.unpack('>I', payload[:4])[0]
            if flags & 1:
                break
            magic = struct.unpack('>I', self.recv(4))[0]
            assert magic == STRUCT
        return cookie, err, (extents if extents else data)

    def read(self, offset, length, flags=0):
        self.request(CMD_READ, offset, length, flags)
        return self.reply(length)

    def write(self, offset, data, flags=0):
        self.request(CMD_WRITE, offset, len(data), flags, data)
        return self.reply()

    def cmd(self, cmd, offset=0, length=0, flags=0):
        self.request(cmd, offset, length, flags)
        return self.reply()

    def disc(self):
        self.request(CMD_DISC)
        self.s.close()

    def close(self):
        self.s.close()
