#!/usr/bin/env python3
"""thrash.py: writer and checker of verifiable blocks for the thrash scenario.

  thrash.py write COLLIE PORTS VDI SLOTS SECONDS LOG   write blocks until SECONDS pass
  thrash.py verify COLLIE PORT VDI SLOTS LOG             check every acknowledged block

A block (64 KiB) carries its slot, a generation and a crc32 of its payload. The log records each
attempt before it is sent and each acknowledgement after collie returned 0. Verification: every
slot whose write was acknowledged holds a valid block of a generation that was attempted and is
not older than the last acknowledged one; slots never written read as zeros."""
import os, random, struct, subprocess, sys, time, zlib

BLOCK = 64 * 1024
MAGIC = 0x54485241  # "THRA"

def make_block(slot, gen):
    rnd = random.Random(slot * 1000003 + gen)
    payload = rnd.randbytes(BLOCK - 24)
    hdr = struct.pack("<IIQI", MAGIC, slot, gen, zlib.crc32(payload))
    return hdr + b"\0" * (24 - len(hdr)) + payload

def write(collie, ports, vdi, slots, seconds, logpath):
    ports = [int(p) for p in ports.split(",")]
    gens = {}
    deadline = time.time() + float(seconds)
    acked = failed = 0
    with open(logpath, "w", buffering=1) as log:
        while time.time() < deadline:
            slot = random.randrange(slots)
            gen = gens.get(slot, 0) + 1
            gens[slot] = gen
            log.write(f"try {slot} {gen}\n")
            data = make_block(slot, gen)
            ok = False
            for port in random.sample(ports, len(ports)):
                r = subprocess.run([collie, "vdi", "write", "-p", str(port), vdi, str(slot * BLOCK), str(BLOCK)],
                                   input=data, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if r.returncode == 0:
                    ok = True
                    break
            if ok:
                log.write(f"ack {slot} {gen}\n")
                acked += 1
            else:
                failed += 1
    print(f"writer: {acked} acknowledged writes, {failed} failed")

def verify(collie, port, vdi, slots, logpath):
    tried, acked = {}, {}
    for line in open(logpath):
        kind, slot, gen = line.split()
        slot, gen = int(slot), int(gen)
        if kind == "try":
            tried.setdefault(slot, set()).add(gen)
        else:
            acked[slot] = max(acked.get(slot, 0), gen)
    r = subprocess.run([collie, "vdi", "read", "-p", str(port), vdi, "0", str(slots * BLOCK)], capture_output=True)
    if r.returncode != 0:
        print("verify: vdi read failed:", r.stderr.decode().strip())
        return 1
    data = r.stdout
    bad = 0
    for slot in range(slots):
        blk = data[slot * BLOCK:(slot + 1) * BLOCK]
        if slot not in tried:
            if blk.count(0) != BLOCK:
                print(f"slot {slot}: never written but not zero"); bad += 1
            continue
        magic, s, gen, crc = struct.unpack("<IIQI", blk[:20])
        if magic != MAGIC or s != slot or zlib.crc32(blk[24:]) != crc:
            if slot in acked:
                print(f"slot {slot}: acknowledged generation {acked[slot]} lost (block invalid)"); bad += 1
            continue
        if gen not in tried[slot]:
            print(f"slot {slot}: generation {gen} was never written"); bad += 1
        elif gen < acked.get(slot, 0):
            print(f"slot {slot}: holds generation {gen}, older than acknowledged {acked[slot]}"); bad += 1
        elif blk != make_block(slot, gen):
            print(f"slot {slot}: generation {gen} content differs"); bad += 1
    print(f"verify: {len(acked)} slots acknowledged, {len(tried)} written, {bad} bad")
    return 1 if bad else 0

if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7])
    else:
        sys.exit(verify(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]))
