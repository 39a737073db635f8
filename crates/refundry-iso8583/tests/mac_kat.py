#!/usr/bin/env python3
"""China UnionPay's POS ECB MAC, step by step, with OpenSSL doing the DES.

Gives the Rust tests known answers computed outside the code under test.
usage: mac_kat.py KEY_HEX MAC_BLOCK_HEX   (key: 16 hex digits DES, 32 double-length 3DES)
"""
import subprocess
import sys


def encrypt(key_hex: str, block: bytes) -> bytes:
    cipher = "-des-ecb" if len(key_hex) == 16 else "-des-ede-ecb"
    args = ["openssl", "enc", cipher, "-K", key_hex, "-nopad", "-provider", "legacy", "-provider", "default"]
    return subprocess.run(args, input=block, capture_output=True, check=True).stdout


def cup_ecb_mac(key_hex: str, data: bytes) -> bytes:
    data += b"\0" * (-len(data) % 8)
    x = bytes(8)
    for i in range(0, len(data), 8):
        x = bytes(a ^ b for a, b in zip(x, data[i : i + 8]))
    h = x.hex().upper().encode()
    left = encrypt(key_hex, h[:8])
    mixed = bytes(a ^ b for a, b in zip(left, h[8:]))
    return encrypt(key_hex, mixed).hex().upper().encode()[:8]


if __name__ == "__main__":
    print(cup_ecb_mac(sys.argv[1], bytes.fromhex(sys.argv[2])).decode())
