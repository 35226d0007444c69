#!/usr/bin/env python3
"""Writes MANIFEST.json: the inputs of the generated EIF vectors and what core::eif must read
from them (header fields, section offsets and sizes, CRC-32, PCRs), computed here with Python's
hashlib and zlib, apart from Tessera's Rust code. core/tests/eif_vectors.rs builds each EIF from
these inputs and checks core::eif::parse against this file.

The PCR arithmetic here is the one AWS's image-format crate uses: with the inputs of the team's
reference EIFs (built by that crate) it gives their PCR0, PCR1 and PCR2.

    python3 core/tests/vectors/eif/expected.py   # rewrites MANIFEST.json beside it
"""
import base64
import hashlib
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER_LEN = 548
SECTION_HEADER_LEN = 12
KERNEL, CMDLINE, RAMDISK, SIGNATURE, METADATA = 1, 2, 3, 4, 5


def stream(label, n):
    """n bytes: SHA-384(label || counter as 4 big-endian bytes) for counter 0, 1, ..."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha384(label.encode() + struct.pack(">I", i)).digest()
        i += 1
    return out[:n]


def pcr(measured):
    return hashlib.sha384(bytes(48) + hashlib.sha384(measured).digest()).hexdigest()


def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    if n < 0x100:
        return bytes([major << 5 | 24, n])
    if n < 0x10000:
        return bytes([major << 5 | 25]) + struct.pack(">H", n)
    return bytes([major << 5 | 26]) + struct.pack(">I", n)


def pem_der(pem):
    body = b"".join(l for l in pem.splitlines() if l and not l.startswith(b"-----"))
    return base64.b64decode(body)


INPUTS = {
    "kernel": {"stream": "tessera eif vector: kernel", "len": 5000},
    "cmdline": "reboot=k panic=30 pci=off nomodules console=ttyS0 random.trust_cpu=on tessera=test",
    "metadata": {
        "ImageName": "tessera-eif-vector",
        "ImageVersion": "1.0",
        "BuildMetadata": {"BuildTime": "2025-01-01T00:00:00Z", "BuildTool": "tessera tests"},
    },
    "ramdisks": [
        {"stream": "tessera eif vector: ramdisk 0", "len": 3000},
        {"stream": "tessera eif vector: ramdisk 1", "len": 7000},
    ],
    "default_mem": 1 << 30,
    "default_cpus": 2,
    "signing_certificate": "sign_cert.pem",
}
# The signature section: [{"signing_certificate": PEM as an array of byte values (as AWS's tools
# write it), "signature": a COSE_Sign1 as a byte string}]. The COSE_Sign1 has a 4-byte protected
# header, an empty unprotected header, the payload below and a 96-byte signature.
COSE_PAYLOAD_LEN = 1 + (1 + 14) + 1 + (1 + 14) + (2 + 48)  # {"register_index": 0, "register_value": h'..'}
COSE_LEN = 1 + (1 + 4) + 1 + (2 + COSE_PAYLOAD_LEN) + (2 + 96)


def sections(signed, ramdisks):
    cmdline = INPUTS["cmdline"].encode()
    metadata = json.dumps(INPUTS["metadata"], separators=(",", ":"), sort_keys=True).encode()
    out = [(KERNEL, stream(**{"label": INPUTS["kernel"]["stream"], "n": INPUTS["kernel"]["len"]})),
           (CMDLINE, cmdline), (METADATA, metadata)]
    for r in INPUTS["ramdisks"][:ramdisks]:
        out.append((RAMDISK, stream(r["stream"], r["len"])))
    if signed:
        pem = open(os.path.join(HERE, INPUTS["signing_certificate"]), "rb").read()
        sig = cbor_head(4, 1) + cbor_head(5, 2) + cbor_head(3, 19) + b"signing_certificate"
        sig += cbor_head(4, len(pem)) + b"".join(cbor_head(0, b) for b in pem)
        sig += cbor_head(3, 9) + b"signature" + cbor_head(2, COSE_LEN) + bytes(COSE_LEN)
        out.append((SIGNATURE, sig))
    return out


def vector(name, signed, ramdisks):
    secs = sections(signed, ramdisks)
    offsets, sizes, pos = [], [], HEADER_LEN
    for _, data in secs:
        offsets.append(pos)
        sizes.append(len(data))
        pos += SECTION_HEADER_LEN + len(data)
    header = b".eif" + struct.pack(">HHQQHH", 4, 0, INPUTS["default_mem"], INPUTS["default_cpus"], 0, len(secs))
    header += b"".join(struct.pack(">Q", o) for o in offsets + [0] * (32 - len(secs)))
    header += b"".join(struct.pack(">Q", s) for s in sizes + [0] * (32 - len(secs)))
    header += struct.pack(">I", 0)
    body = b"".join(struct.pack(">HHQ", kind, 0, len(data)) + data for kind, data in secs)
    kinds = {KERNEL: "Kernel", CMDLINE: "Cmdline", RAMDISK: "Ramdisk", SIGNATURE: "Signature", METADATA: "Metadata"}
    image = b"".join(d for k, d in secs if k in (KERNEL, CMDLINE, RAMDISK))
    rams = [d for k, d in secs if k == RAMDISK]
    boot = b"".join(d for k, d in secs if k in (KERNEL, CMDLINE)) + (rams[0] if rams else b"")
    m = {"PCR0": pcr(image), "PCR1": pcr(boot), "PCR2": pcr(b"".join(rams[1:]))}
    v = {"name": name, "signed": signed, "ramdisks": ramdisks,
         "header": {"version": 4, "default_mem": INPUTS["default_mem"], "default_cpus": INPUTS["default_cpus"],
                    "section_kinds": [kinds[k] for k, _ in secs], "section_offsets": offsets, "section_sizes": sizes,
                    "file_size": pos},
         "measurements": m}
    if signed:
        pem = open(os.path.join(HERE, INPUTS["signing_certificate"]), "rb").read()
        m["PCR8"] = pcr(pem_der(pem))
    else:
        # The CRC of a signed image covers its (randomised) ECDSA signature.
        v["header"]["crc32"] = zlib.crc32(body, zlib.crc32(header))
    return v


manifest = {
    "about": "Generated EIF vectors of core/tests/eif_vectors.rs: the test writes each image from 'inputs' and checks what core::eif reads from it against the values here, which expected.py computes independently.",
    "inputs": INPUTS,
    "vectors": [vector("unsigned", False, 2), vector("signed", True, 2), vector("one_ramdisk", False, 1)],
}
with open(os.path.join(HERE, "MANIFEST.json"), "w") as f:
    json.dump(manifest, f, indent=1)
    f.write("\n")
