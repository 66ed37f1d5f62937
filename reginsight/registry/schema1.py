"""Signed Docker schema1 manifests: libtrust keys and "prettyjws" signatures.

    key = ri.schema1.generate_key()
    signed = ri.schema1.sign(manifest_dict, key)       # bytes, as registries store them
    keys = ri.schema1.verify(signed)                   # public keys; raises on tampering
    ri.schema1.key_id(key)                             # "ABCD:EFGH:..." as libtrust prints

The format is libtrust's: the manifest pretty-printed with three-space indents, a
``signatures`` member spliced in before the closing brace, and each signature's
``protected`` header carrying ``formatLength``/``formatTail`` so a verifier can cut
the signatures back out and recover the exact signed payload. Keys are ECDSA
(P-256/384/521) or RSA; new keys are P-256 (ES256), as libtrust generates.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from .._errors import ManifestInvalid, RegistryError, SignatureInvalid
from ._manifest import b64url_decode, schema1_payload, signed_payload

__all__ = [
    "SignatureInvalid",
    "generate_key",
    "key_id",
    "load_key",
    "private_jwk",
    "public_jwk",
    "save_key",
    "sign",
    "verify",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_CURVES = {"P-256": (ec.SECP256R1, hashes.SHA256, "ES256"),
           "P-384": (ec.SECP384R1, hashes.SHA384, "ES384"),
           "P-521": (ec.SECP521R1, hashes.SHA512, "ES512")}
_CURVE_NAMES = {curve.name: name for name, (curve, _, _) in _CURVES.items()}
_RSA_HASHES = {"RS256": hashes.SHA256, "RS384": hashes.SHA384, "RS512": hashes.SHA512}


# ----------------------------------------------------------------- base64url


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: Any) -> bytes:
    try:
        return b64url_decode(text)
    except ManifestInvalid as exc:
        raise SignatureInvalid(str(exc)) from None


def _int_bytes(value: int, length: int | None = None) -> bytes:
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")


# ---------------------------------------------------------------------- keys


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A new ECDSA P-256 key, as ``libtrust.GenerateECP256PrivateKey``."""
    return ec.generate_private_key(ec.SECP256R1())


def _public(key: PrivateKey | PublicKey) -> PublicKey:
    return key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) \
        else key


def key_id(key: PrivateKey | PublicKey) -> str:
    """libtrust's key ID: SHA-256 of the DER public key, first 240 bits, base32, in
    twelve colon-separated groups of four."""
    der = _public(key).public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i:i + 4] for i in range(0, 48, 4))


def public_jwk(key: PrivateKey | PublicKey) -> dict[str, str]:
    """The public key as a libtrust JWK (with ``kid``)."""
    public = _public(key)
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        size = (public.curve.key_size + 7) // 8
        return {"crv": _CURVE_NAMES[public.curve.name], "kid": key_id(public), "kty": "EC",
                "x": _b64(_int_bytes(numbers.x, size)), "y": _b64(_int_bytes(numbers.y, size))}
    numbers = public.public_numbers()
    return {"e": _b64(_int_bytes(numbers.e)), "kid": key_id(public), "kty": "RSA",
            "n": _b64(_int_bytes(numbers.n))}


def private_jwk(key: PrivateKey) -> dict[str, str]:
    """The private key as a libtrust JWK (public members plus ``d``; RSA adds CRT)."""
    jwk = public_jwk(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        jwk["d"] = _b64(_int_bytes(key.private_numbers().private_value, size))
    else:
        n = key.private_numbers()
        jwk.update(d=_b64(_int_bytes(n.d)), p=_b64(_int_bytes(n.p)), q=_b64(_int_bytes(n.q)),
                   dp=_b64(_int_bytes(n.dmp1)), dq=_b64(_int_bytes(n.dmq1)),
                   qi=_b64(_int_bytes(n.iqmp)))
    return jwk


def _jwk_int(jwk: Mapping[str, Any], name: str) -> int:
    return int.from_bytes(_unb64(jwk.get(name)), "big")


def key_from_jwk(jwk: Mapping[str, Any]) -> PrivateKey | PublicKey:
    """A key from a libtrust JWK: private when it has ``d``, public otherwise."""
    if not isinstance(jwk, Mapping):
        raise SignatureInvalid("a JWK must be a JSON object")
    try:
        if jwk.get("kty") == "EC":
            curve = _CURVES[jwk["crv"]][0]()
            public = ec.EllipticCurvePublicNumbers(_jwk_int(jwk, "x"), _jwk_int(jwk, "y"), curve)
            if "d" in jwk:
                return ec.EllipticCurvePrivateNumbers(_jwk_int(jwk, "d"), public).private_key()
            return public.public_key()
        if jwk.get("kty") == "RSA":
            public = rsa.RSAPublicNumbers(_jwk_int(jwk, "e"), _jwk_int(jwk, "n"))
            if "d" in jwk:
                p, q, d = _jwk_int(jwk, "p"), _jwk_int(jwk, "q"), _jwk_int(jwk, "d")
                return rsa.RSAPrivateNumbers(
                    p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                    rsa.rsa_crt_iqmp(p, q), public).private_key()
            return public.public_key()
    except (KeyError, ValueError, TypeError) as exc:
        raise SignatureInvalid(f"unusable JWK: {type(exc).__name__}") from None
    raise SignatureInvalid(f"unsupported JWK key type {str(jwk.get('kty'))[:20]!r}")


def save_key(key: PrivateKey, path: str | Path, *, format: str = "pem") -> Path:
    """Write a private key as PKCS#8 PEM (``format="pem"``) or libtrust JWK (``"jwk"``),
    readable by its owner only."""
    path = Path(path)
    if format == "pem":
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    elif format == "jwk":
        data = json.dumps(private_jwk(key), indent=2).encode()
    else:
        raise RegistryError(f"key format must be 'pem' or 'jwk', not {format!r}")
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)
    return path


def load_key(path: str | Path) -> PrivateKey:
    """Read a private key saved as PEM (PKCS#8 or SEC1 "EC PRIVATE KEY") or JWK."""
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"{"):
        try:
            key = key_from_jwk(json.loads(data))
        except ValueError:
            raise SignatureInvalid(f"{path}: not a JWK") from None
    else:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise SignatureInvalid(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise SignatureInvalid(f"{path}: not an EC or RSA private key")
    return key


# --------------------------------------------------------------- sign/verify


def _algorithm(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return _CURVES[_CURVE_NAMES[key.curve.name]][2]
    return "RS256"


def _pretty(manifest: Mapping[str, Any]) -> bytes:
    # Go's json.MarshalIndent(v, "", "   "): no HTML escaping differences matter
    # here since the payload travels with its own bytes.
    return json.dumps(manifest, indent=3, ensure_ascii=False).encode()


def sign(manifest: Mapping[str, Any], key: PrivateKey, *, now: dt.datetime | None = None) -> bytes:
    """Sign a schema1 manifest (a dict without ``signatures``) in libtrust's prettyjws form."""
    if not isinstance(manifest, Mapping) or manifest.get("schemaVersion") != 1:
        raise ManifestInvalid("schema1.sign needs a manifest dict with schemaVersion 1")
    content = _pretty({k: v for k, v in manifest.items() if k != "signatures"})
    close = len(content.rstrip()) - 1  # the final "}"
    format_length = len(content[:close].rstrip())
    when = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    protected = _b64(json.dumps({"formatLength": format_length,
                                 "formatTail": _b64(content[format_length:]),
                                 "time": when}, separators=(",", ":")).encode())
    signing_input = f"{protected}.{_b64(content)}".encode()
    algorithm = _algorithm(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        curve_hash = _CURVES[_CURVE_NAMES[key.curve.name]][1]
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(curve_hash())))
        size = (key.curve.key_size + 7) // 8
        signature = _int_bytes(r, size) + _int_bytes(s, size)
    else:
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    entry = {"header": {"jwk": public_jwk(key), "alg": algorithm},
             "signature": _b64(signature), "protected": protected}
    signatures = json.dumps([entry], indent=3)
    signatures = signatures.replace("\n", "\n   ")  # nested one level, as libtrust does
    return (content[:format_length] + b',\n   "signatures": ' + signatures.encode()
            + b"\n}")


def _verify_one(raw: bytes, entry: Any) -> PublicKey:
    if not isinstance(entry, dict) or not isinstance(entry.get("header"), dict):
        raise SignatureInvalid("a signature entry lacks its header")
    header = entry["header"]
    protected_text = entry.get("protected")
    try:
        payload = signed_payload(raw, protected_text)
    except ManifestInvalid as exc:
        raise SignatureInvalid(str(exc)) from None
    if "jwk" in header:
        key = key_from_jwk(header["jwk"])
    elif header.get("x5c"):
        from cryptography import x509

        chain = header["x5c"]
        try:
            if not isinstance(chain, list) or not isinstance(chain[0], str):
                raise TypeError
            key = x509.load_der_x509_certificate(base64.b64decode(chain[0])).public_key()
        except (ValueError, TypeError, binascii.Error):
            raise SignatureInvalid("unreadable x5c certificate") from None
    else:
        raise SignatureInvalid("signature header names no key (jwk or x5c)")
    key = _public(key)
    algorithm = header.get("alg")
    signing_input = f"{protected_text}.{_b64(payload)}".encode()
    signature = _unb64(entry.get("signature"))
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            name = _CURVE_NAMES.get(key.curve.name)
            if name is None or _CURVES[name][2] != algorithm:
                raise SignatureInvalid(f"algorithm {algorithm!r} does not fit the EC key")
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                raise SignatureInvalid("EC signature has the wrong length")
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                       int.from_bytes(signature[size:], "big"))
            key.verify(der, signing_input, ec.ECDSA(_CURVES[name][1]()))
        elif isinstance(key, rsa.RSAPublicKey) and algorithm in _RSA_HASHES:
            key.verify(signature, signing_input, padding.PKCS1v15(), _RSA_HASHES[algorithm]())
        else:
            raise SignatureInvalid(f"unsupported algorithm {str(algorithm)[:20]!r}")
    except InvalidSignature:
        raise SignatureInvalid(f"signature by {key_id(key)} does not verify") from None
    return key


def verify(raw: bytes) -> list[PublicKey]:
    """Verify every signature of a signed schema1 manifest; return the signing keys.

    Raises SignatureInvalid when there is no signature, when any signature fails,
    or when the signatures disagree about the payload (tampering).
    """
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise SignatureInvalid("not JSON") from None
    signatures = doc.get("signatures") if isinstance(doc, dict) else None
    if not isinstance(signatures, list) or not signatures:
        raise SignatureInvalid("manifest carries no signatures")
    keys = [_verify_one(bytes(raw), entry) for entry in signatures]
    # every signature covers the same payload, and it is the document minus signatures
    payload_doc = {k: v for k, v in doc.items() if k != "signatures"}
    try:
        signed_doc = json.loads(schema1_payload(bytes(raw)))
    except (ValueError, ManifestInvalid):
        raise SignatureInvalid("signed payload is not JSON") from None
    if signed_doc != payload_doc:
        raise SignatureInvalid("signed payload differs from the manifest around it")
    return keys
