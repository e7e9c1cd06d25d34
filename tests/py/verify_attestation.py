#!/usr/bin/env python3
"""An independent verifier of bureau threshold attestations, written only from the formats:
RFC 7515/8037 (JWS, EdDSA) checked by PyJWT, the RFC 9162 inclusion proof recomputed here, and
the C2SP signed-note checkpoint checked with `cryptography`'s Ed25519.

usage: verify_attestation.py BUNDLE.json VERIFIER_KEY_FILE VERIFIER NONCE
Exit 0 and print the claims when the attestation holds; exit 1 with the reason otherwise.
"""
import base64
import hashlib
import json
import sys

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Refused(Exception):
    pass


def parse_verifier_key(text):
    """C2SP signed-note verifier key: name+hex(key id)+base64(0x01 || 32-byte Ed25519 key)."""
    name, key_id, b64 = text.strip().split("+", 2)
    blob = base64.b64decode(b64)
    if len(blob) != 33 or blob[0] != 0x01:
        raise Refused("not an Ed25519 verifier key")
    raw = blob[1:]
    if hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()[:4].hex() != key_id:
        raise Refused("verifier key id does not match")
    return name, raw, bytes.fromhex(key_id)


def open_checkpoint(note, name, key, key_id):
    body, _, sigs = note.partition("\n\n")
    body += "\n"
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            continue
        signer, _, b64 = line[2:].partition(" ")
        blob = base64.b64decode(b64)
        if signer != name or len(blob) != 68 or blob[:4] != key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(blob[4:], body.encode())
        except InvalidSignature:
            continue
        origin, size, root = body.splitlines()[:3]
        return origin, int(size), base64.b64decode(root)
    raise Refused("checkpoint not signed by the node's key")


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, hashlib.sha256(b"\x00" + leaf).digest()
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify(bundle, key_text, verifier, nonce):
    name, key, key_id = parse_verifier_key(key_text)
    token = bundle["jws"]
    if jwt.get_unverified_header(token).get("typ") != "bureau-attestation+jwt":
        raise Refused("not a bureau attestation")
    try:
        claims = jwt.decode(
            token,
            Ed25519PublicKey.from_public_bytes(key),
            algorithms=["EdDSA"],
            audience=verifier,
            issuer=name,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "nonce"]},
        )
    except jwt.ExpiredSignatureError:
        raise Refused("expired")
    except jwt.InvalidAudienceError:
        raise Refused("for another verifier")
    except jwt.InvalidTokenError as e:
        raise Refused(f"statement: {type(e).__name__}: {e}")
    if claims["nonce"] != nonce:
        raise Refused("for another nonce")
    if "score" in claims or "reasons" in claims:
        raise Refused("carries a score")
    origin, size, root = open_checkpoint(bundle["checkpoint"], name, key, key_id)
    if origin != name or size != bundle["tree_size"]:
        raise Refused("checkpoint for another log or tree")
    leaf = base64.b64decode(bundle["log_entry"])
    entry = json.loads(leaf)
    if entry.get("action") != "attestation_issued" or entry.get("detail") != token:
        raise Refused("not in the log: the entry does not carry this statement")
    proof = [base64.b64decode(h) for h in bundle["inclusion_proof"]]
    if not verify_inclusion(bundle["log_index"], size, leaf, proof, root):
        raise Refused("not in the log: the inclusion proof does not reach the signed root")
    return claims


def main():
    bundle_path, key_path, verifier, nonce = sys.argv[1:5]
    with open(bundle_path) as f:
        bundle = json.load(f)
    with open(key_path) as f:
        key_text = f.read()
    try:
        claims = verify(bundle, key_text, verifier, nonce)
    except (Refused, ValueError, KeyError) as e:
        print(f"refused: {e}")
        sys.exit(1)
    print("ok " + json.dumps(claims, sort_keys=True))


if __name__ == "__main__":
    main()
