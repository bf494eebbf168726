# sdproto.py: a minimal sheepdog-protocol client for tests, written from protocol.md.
import hashlib
import hmac
import os
import socket
import struct

HDR = struct.Struct('<BBHIII32s')

def req(opcode, flags=0, data_length=0, proto_ver=0x02, epoch=0, req_id=1, union=b''):
    return HDR.pack(proto_ver, opcode, flags, epoch, req_id, data_length, union.ljust(32, b'\0'))

def obj_union(oid, cow_oid=0, copies=0, offset=0):
    return struct.pack('<QQBBBBII', oid, cow_oid, copies, 0, 0, 0, 0, offset) + b'\0' * 4

def vdi_union(size=0, base=0, copies=0, snapid=0, copy_policy=0):
    return struct.pack('<QIBBBBII', size, base, copies, copy_policy, 0, 0, snapid, 0) + b'\0' * 8

def redundancy(spec):
    """QEMU 5.2's sheepdog driver: redundancy=N is N copies; D:P is copies D+P with the
    copy_policy byte ((D / 2) << 4) | P"""
    if ':' not in spec:
        return int(spec), 0
    d, p = (int(x) for x in spec.split(':'))
    return d + p, (d // 2) << 4 | p

class Conn:
    def __init__(self, port, host='127.0.0.1'):
        self.s = socket.create_connection((host, port), timeout=30)

    def send(self, hdr, payload=b''):
        self.s.sendall(hdr + payload)

    def recv_rsp(self):
        h = self._recv(48)
        ver, op, flags, epoch, rid, dlen, rest = HDR.unpack(h)
        result = struct.unpack_from('<I', rest, 0)[0]
        data = self._recv(dlen) if dlen else b''
        return {'op': op, 'id': rid, 'result': result, 'data': data, 'raw': rest}

    def _recv(self, n):
        buf = b''
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise EOFError('connection closed')
            buf += chunk
        return buf

    def exchange(self, hdr, payload=b''):
        self.send(hdr, payload)
        return self.recv_rsp()

    def close(self):
        self.s.close()

def vid_of(name):
    h = 0xcbf29ce484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001b3) & 0xffffffffffffffff
    v = h & 0xffffff
    return v or 1


# connection authentication (sheep(8), "Authentication")
OP_AUTH_CHALLENGE, OP_AUTH_RESPONSE = 0xE0, 0xE1
RES_PERM_DENIED = 0xA0
ROLE_PEER, ROLE_ADMIN, ROLE_SERVER = b'P', b'A', b'S'

def read_key_file(path):
    return bytes.fromhex(''.join(open(path).read().split()))

def auth_mac(key, first, second, role):
    return hmac.new(key, first + second + role, hashlib.sha256).digest()

def auth_challenge(conn, req_id=1):
    """the sheep's nonce (b'' when it has no key)"""
    r = conn.exchange(req(OP_AUTH_CHALLENGE, data_length=32, req_id=req_id))
    if r['result']:
        raise RuntimeError('AUTH_CHALLENGE: result 0x%x' % r['result'])
    return r['data'] if r['raw'][4] else b''

def auth_send_response(conn, payload, role=ROLE_ADMIN, req_id=2):
    return conn.exchange(req(OP_AUTH_RESPONSE, flags=0x01, data_length=len(payload), req_id=req_id,
                             union=role), payload)

def authenticate(conn, key, role=ROLE_ADMIN):
    """the whole exchange; returns (result, the payload sent) and checks the sheep's proof"""
    server_nonce = auth_challenge(conn)
    client_nonce = os.urandom(32)
    payload = client_nonce + auth_mac(key, server_nonce, client_nonce, role)
    r = auth_send_response(conn, payload, role)
    if r['result'] == 0 and r['data'] != auth_mac(key, client_nonce, server_nonce, ROLE_SERVER):
        raise RuntimeError('the sheep did not prove the key')
    return r['result'], payload
