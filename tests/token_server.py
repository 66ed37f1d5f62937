"""A Docker token server the tests run on loopback (auth: token for the real registry).

It issues ES256 JWTs signed by a key whose self-signed certificate is the registry's
``rootcertbundle`` and travels in the JWT header as ``x5c``. Grants follow a table
of users: ``access`` claims hold only the actions a user may have, so the registry
really accepts and rejects what reginsight does with them.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.hostile import HostileServer, Seen
from tests.pki import self_signed

SERVICE = "reginsight-test"
ISSUER = "reginsight-token-server"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class User:
    password: str
    #: (repository glob, allowed actions); "registry:catalog" for the catalog
    grants: list[tuple[str, set[str]]]
    refresh_token: str | None = None


@dataclass
class TokenServer:
    users: dict[str, User]
    anonymous: list[tuple[str, set[str]]] = field(default_factory=list)
    expires_in: int | None = 300
    token_field: str = "token"
    #: a query the realm carries (``tenant=acme``) and every token request must keep
    realm_query: str = ""
    requests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.signer = self_signed("reginsight token signer")
        self.http = HostileServer(routes={"/token": self._answer})

    def __enter__(self) -> TokenServer:
        self.http.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.__exit__(*exc)

    @property
    def realm(self) -> str:
        return f"{self.http.url}/token" + (f"?{self.realm_query}" if self.realm_query else "")

    def write_bundle(self, path: Path) -> Path:
        path.write_bytes(self.signer.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def registry_auth_config(self, bundle: Path) -> dict:
        return {"token": {"realm": self.realm, "service": SERVICE, "issuer": ISSUER,
                          "rootcertbundle": str(bundle)}}

    # ------------------------------------------------------------------ answer

    def _who(self, seen: Seen, form: dict[str, list[str]]) -> tuple[str | None, bool]:
        """(user, ok): None for anonymous; ok False for wrong credentials."""
        if form.get("grant_type") == ["refresh_token"]:
            token = form.get("refresh_token", [""])[0]
            user = next((n for n, u in self.users.items() if u.refresh_token == token), None)
            return user, user is not None
        header = seen.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return None, True
        name, _, password = base64.b64decode(header[6:]).decode().partition(":")
        user = self.users.get(name)
        return name, user is not None and user.password == password

    def _answer(self, seen: Seen):
        query = parse_qs(seen.path.partition("?")[2])
        form = parse_qs(seen.body.decode()) if seen.method == "POST" else {}
        params = {**query, **form}
        scopes = [s for value in params.get("scope", []) for s in value.split(" ") if s]
        name, ok = self._who(seen, form)
        self.requests.append({"user": name, "scopes": scopes, "method": seen.method,
                              "service": params.get("service", [""])[0], "query": query})
        for key, values in parse_qs(self.realm_query).items():
            if query.get(key) != values:  # as a multi-tenant token server would
                return 400, {"Content-Type": "application/json"}, b'{"details":"no tenant"}'
        if not ok:
            return 401, {"Content-Type": "application/json"}, b'{"details":"bad credentials"}'
        grants = self.users[name].grants if name else self.anonymous
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            resource, _, actions = rest.rpartition(":")
            allowed = set()
            for pattern, granted in grants:
                if fnmatch.fnmatchcase(f"{kind}:{resource}", pattern):
                    allowed |= granted
            wanted = set(actions.split(","))
            given = sorted(wanted & allowed) if "*" not in allowed else sorted(wanted)
            if given:
                access.append({"type": kind, "name": resource, "actions": given})
        token = self.sign({
            "iss": ISSUER, "sub": name or "", "aud": params.get("service", [SERVICE])[0],
            "exp": int(time.time()) + (self.expires_in or 60), "nbf": int(time.time()) - 10,
            "iat": int(time.time()), "jti": uuid.uuid4().hex, "access": access,
        })
        body = {self.token_field: token}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def sign(self, claims: dict) -> str:
        der = self.signer.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(
            self.signer.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
