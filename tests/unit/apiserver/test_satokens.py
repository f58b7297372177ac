"""Bound ServiceAccount tokens: what is signed is what verifies, and nothing else."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from svcnet.apiserver.satokens import ISSUER, Bound, TokenIssuer

NOW = datetime.now(UTC)


def issue(issuer: TokenIssuer, **kw: object) -> str:
    args: dict[str, object] = {"namespace": "ci", "name": "builder", "uid": "sa-uid",
                               "audiences": (ISSUER,), "now": NOW, "expiration_seconds": 3600}
    args.update(kw)
    token, _ = issuer.issue(**args)  # type: ignore[arg-type]
    return token


def test_round_trip_with_upstreams_claims(tmp_path: Path) -> None:
    issuer = TokenIssuer(tmp_path / "sa.key")
    token = issue(issuer, pod=Bound("Pod", "web-1", "pod-uid"), node=Bound("Node", "n1", "n-uid"))
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "kid": issuer.key_id, "typ": "JWT"}
    body = jwt.decode(token, options={"verify_signature": False})
    assert body["sub"] == "system:serviceaccount:ci:builder"
    assert body["iss"] == ISSUER and body["aud"] == [ISSUER]
    assert body["kubernetes.io"] == {"namespace": "ci",
                                     "node": {"name": "n1", "uid": "n-uid"},
                                     "pod": {"name": "web-1", "uid": "pod-uid"},
                                     "serviceaccount": {"name": "builder", "uid": "sa-uid"}}
    claims = issuer.verify(token)
    assert claims is not None
    assert (claims.username, claims.uid, claims.pod, claims.node_name) == (
        "system:serviceaccount:ci:builder", "sa-uid", Bound("Pod", "web-1", "pod-uid"), "n1")
    # The key persists: a restarted server still accepts what it issued.
    assert TokenIssuer(tmp_path / "sa.key").verify(token) == claims
    assert (tmp_path / "sa.key").stat().st_mode & 0o777 == 0o600


def test_what_does_not_verify(tmp_path: Path) -> None:
    issuer = TokenIssuer(tmp_path / "sa.key")
    other = TokenIssuer(tmp_path / "other.key")
    assert issuer.verify(issue(other)) is None, "another key's token"
    assert issuer.verify(issue(issuer, audiences=("vault",))) is None, "another audience"
    assert issuer.verify(issue(issuer, audiences=("vault",)), ("vault",)) is not None
    expired = issue(issuer, now=NOW - timedelta(hours=2))
    assert issuer.verify(expired) is None
    head, body, sig = issue(issuer).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["kubernetes.io"]["serviceaccount"]["name"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert issuer.verify(f"{head}.{forged}.{sig}") is None, "a changed claim"
    assert issuer.verify("not.a.token") is None
