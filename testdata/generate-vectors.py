#!/usr/bin/env python3
"""Write envelope-v1.json: known-answer and must-fail vectors for format v1.

This is a second implementation of the v1 envelope, written from the
"Envelope, format v1" section of DESIGN.md (and docs/FORMAT.md) and sharing
no code with the Go package. If both agree on every byte, the format is
pinned. Keys and IVs are fixed, obviously fake values, so a rerun gives the
same file byte for byte.

Usage: python3 testdata/generate-vectors.py   (needs the cryptography package)
"""

import base64
import hashlib
import hmac
import json
import os
import struct

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = b"v1."

# Fake master keys: 00 01 .. 1f, and ff fe .. e0 for "another key".
MASTER = bytes(range(32))
OTHER_MASTER = bytes(255 - i for i in range(32))


def derive(master, info, n):
    """HKDF-SHA256 with an empty salt."""
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=b"", info=info).derive(master)


def subkeys(master):
    return (
        derive(master, b"sqlsecrets/v1/kid", 8),
        derive(master, b"sqlsecrets/v1/enc", 32),
        derive(master, b"sqlsecrets/v1/mac", 32),
    )


def scope_bytes(group, owner, key):
    """u16be(len g) g u8(has owner) u64be(owner or 0) u16be(len k) k."""
    g, k = group.encode(), key.encode()
    has = 0 if owner is None else 1
    return (struct.pack(">H", len(g)) + g + struct.pack(">BQ", has, owner or 0)
            + struct.pack(">H", len(k)) + k)


def cbc(key, iv, data, encrypt=True):
    c = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = c.encryptor() if encrypt else c.decryptor()
    return op.update(data) + op.finalize()


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def assemble(master, group, owner, key, iv, ct):
    """Encode kid || iv || ct || tag; ct is used as given (no padding here)."""
    kid, _, mac_key = subkeys(master)
    msg = PREFIX + kid + scope_bytes(group, owner, key) + iv + ct
    tag = hmac.new(mac_key, msg, hashlib.sha256).digest()
    return PREFIX.decode() + b64url(kid + iv + ct + tag)


def seal(master, group, owner, key, iv, plaintext):
    _, enc_key, _ = subkeys(master)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    return assemble(master, group, owner, key, iv, cbc(enc_key, iv, padded))


def fixed_iv(name):
    """A fixed IV per vector, so no two vectors share one."""
    return hashlib.sha256(b"sqlsecrets test iv " + name.encode()).digest()[:16]


GOOD = [
    # name, group, owner, key, plaintext (JSON text)
    ("empty_string", "global", None, "api_token", '""'),
    ("len_15", "global", None, "api_token", '"abcdefghijklm"'),
    ("len_16", "global", None, "api_token", '"abcdefghijklmn"'),
    ("len_17", "global", None, "api_token", '"abcdefghijklmno"'),
    ("multi_block_object", "billing", 7, "stripe",
     '{"client_id":"ci_test_0001","client_secret":"cs_test_not_a_real_secret",'
     '"scopes":["read","write"],"expires_in":3600}'),
    ("unicode", "équipe", 3, "clé_ünïcødé_🔑", '"pässwörd ✓ 秘密 🔐"'),
    ("owner_null", "users", None, "token", '"same plaintext"'),
    ("owner_0", "users", 0, "token", '"same plaintext"'),
    ("owner_42", "users", 42, "token", '"same plaintext"'),
    ("owner_max", "users", 2**63 - 1, "token", '"same plaintext"'),
    ("key_150", "global", None, "k" * 140 + "0123456789", '{"a":1}'),
    ("json_null", "global", None, "nothing", "null"),
]


def vector(name, master, group, owner, key, iv, pt):
    return {
        "name": name,
        "master_key_hex": master.hex(),
        "kid_hex": subkeys(master)[0].hex(),
        "group": group,
        "owner": owner,
        "key": key,
        "iv_hex": iv.hex(),
        "plaintext": pt,
        "value": seal(master, group, owner, key, iv, pt.encode()),
    }


def good_vectors():
    out = []
    for name, group, owner, key, pt in GOOD:
        iv = fixed_iv(name)
        out.append(vector(name, MASTER, group, owner, key, iv, pt))
    # One value under the other key, so kid derivation is pinned twice.
    out.append(vector("other_master_key", OTHER_MASTER, "global", None, "api_token",
                      fixed_iv("other_master_key"), '"under the other key"'))
    return out


def flip(raw, i):
    b = bytearray(raw)
    b[i] ^= 0x01
    return bytes(b)


def must_fail(by_name):
    base = by_name["owner_42"]  # group "users", owner 42, key "token"
    v, raw = base["value"], unb64url(base["value"][3:])
    scope = (base["group"], base["owner"], base["key"])
    out = []

    def add(name, value, why, master=MASTER, sc=scope):
        out.append({"name": name, "master_key_hex": master.hex(), "group": sc[0],
                    "owner": sc[1], "key": sc[2], "value": value, "why": why})

    def enc(r):
        return "v1." + b64url(r)

    # Tampering with the bytes: every part is covered by the tag or the kid check.
    add("flip_kid_bit", enc(flip(raw, 0)), "kid does not match the key")
    add("flip_iv_bit", enc(flip(raw, 8)), "iv is under the tag")
    add("flip_ct_bit", enc(flip(raw, 24)), "ciphertext is under the tag")
    add("flip_tag_bit", enc(flip(raw, len(raw) - 1)), "tag does not verify")
    add("truncated_1_byte", enc(raw[:-1]), "length is not kid+iv+16n+tag")
    add("extended_1_byte", enc(raw + b"\x00"), "length is not kid+iv+16n+tag")
    add("truncated_1_char", v[:-1], "base64 text cut short")
    # Text-level damage: prefix and alphabet.
    add("prefix_v2", "v2." + v[3:], "unknown version prefix")
    add("no_prefix", v[3:], "missing prefix")
    add("padding_char", v + "=", "v1 base64 has no padding")
    add("padding_chars_2", v + "==", "v1 base64 has no padding")
    add("std_alphabet_plus", v[:20] + "+" + v[21:], "'+' is not in the URL alphabet")
    add("non_base64_char", v[:20] + "!" + v[21:], "'!' is not base64")
    add("newline_inserted", v[:20] + "\n" + v[20:], "a newline is not base64")
    add("cr_appended", v + "\r", "a carriage return is not base64")
    add("space_inserted", v[:20] + " " + v[20:], "a space is not base64")
    add("empty_string", "", "empty value")
    add("prefix_only", "v1.", "no body")
    # A good value in the wrong row: the tag binds the scope.
    add("other_group", v, "tag binds the group", sc=("users2", 42, "token"))
    add("other_owner", v, "tag binds the owner", sc=("users", 43, "token"))
    add("other_key", v, "tag binds the key", sc=("users", 42, "token2"))
    add("owner_0_read_as_null", by_name["owner_0"]["value"],
        "owner 0 and no owner are different scopes", sc=("users", None, "token"))
    add("owner_null_read_as_0", by_name["owner_null"]["value"],
        "no owner and owner 0 are different scopes", sc=("users", 0, "token"))
    # The wrong master key, with its own kid and with the kid forged to match.
    add("other_master_key", v, "kid is not this key's", master=OTHER_MASTER)
    other_kid = subkeys(OTHER_MASTER)[0]
    add("other_master_key_forged_kid", enc(other_kid + raw[8:]),
        "kid matches but the tag was made with another mac key", master=OTHER_MASTER)

    # Valid tags over bad contents: these prove that length and padding
    # errors are the same error as a bad tag.
    _, enc_key, _ = subkeys(MASTER)
    iv = fixed_iv("bad contents")

    def bad(last):  # two blocks, the last one given, no PKCS#7 added
        return cbc(enc_key, iv, b"A" * 16 + last)

    def sealed(ct):  # a correct tag over whatever ct is
        return assemble(MASTER, *scope, iv, ct)

    add("bad_padding_zero", sealed(bad(b"B" * 15 + b"\x00")),
        "valid tag, padding byte 0")
    add("bad_padding_17", sealed(bad(b"B" * 15 + b"\x11")),
        "valid tag, padding byte above 16")
    add("bad_padding_mixed", sealed(bad(b"B" * 13 + b"\x03\x02\x03")),
        "valid tag, padding bytes disagree")
    add("empty_ct_valid_tag", sealed(b""), "valid tag, no ciphertext block")
    add("short_ct_valid_tag", sealed(b"\x00" * 15), "valid tag, partial block")
    return out


def main():
    good = good_vectors()
    by_name = {g["name"]: g for g in good}
    # Self-check: every good value opens with plain decryption, as a reader would.
    for g in good:
        raw = unb64url(g["value"][3:])
        _, enc_key, _ = subkeys(bytes.fromhex(g["master_key_hex"]))
        pt = cbc(enc_key, raw[8:24], raw[24:-32], encrypt=False)
        assert pt[: -pt[-1]].decode() == g["plaintext"], g["name"]

    doc = {
        "comment": "sqlsecrets envelope v1 vectors; generated by "
                   "testdata/generate-vectors.py, do not edit. Keys are fake.",
        "vectors": good,
        "must_fail": must_fail(by_name),
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "envelope-v1.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
