"""CertificateSigningRequests against the real svcnet API server in process (its own
controllers stopped, so each signer or cleaner pass is the test's call): the strategies
(requestor stamped, spec immutable, approval and status subresources), the certificates
admissions with RBAC (approve and sign on ``signers``, no system:masters), the signer's
certificate (subject, usages, lifetime, issuer = the cluster CA) and failure condition, and
the cleaner's deadlines under a fake clock."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from svcnet.api import certificates as csrs
from svcnet.api.errors import StatusError
from svcnet.apiserver.auth import TokenFile, User
from svcnet.apiserver.certs import ClusterCA
from svcnet.apiserver.server import APIServer
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import CERTIFICATESIGNINGREQUESTS as CSRS, GVR, RESTClient
from svcnet.controllers.certificates import CSRCleaner, CSRSigner, cleanup_deadline
from svcnet.util.clock import FakeClock, rfc3339

Obj = dict[str, Any]
CLUSTER_ROLES = GVR("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole",
                    namespaced=False)
CLUSTER_ROLE_BINDINGS = GVR("rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                            "ClusterRoleBinding", namespaced=False)
KEY = ec.generate_private_key(ec.SECP256R1())


def request_pem(cn: str, *orgs: str) -> bytes:
    names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    names.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return (x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
            .sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def new_csr(name: str, pem: bytes, *, signer: str = csrs.KUBE_APISERVER_CLIENT,
            usages: tuple[str, ...] = ("client auth",), **spec: Any) -> Obj:
    return {"apiVersion": csrs.API_VERSION, "kind": csrs.KIND, "metadata": {"name": name},
            "spec": {"request": base64.b64encode(pem).decode(), "signerName": signer,
                     "usages": list(usages), **spec}}


def approved(obj: Obj, ctype: str = "Approved") -> Obj:
    conditions = [*(obj.get("status") or {}).get("conditions", []),
                  {"type": ctype, "status": "True", "reason": "Test", "message": "by test"}]
    return {**obj, "status": {**(obj.get("status") or {}), "conditions": conditions}}


@dataclasses.dataclass
class Cluster:
    server: APIServer
    admin: RESTClient
    data_dir: Path

    async def user(self, name: str, *groups: str) -> RESTClient:
        token = f"token-{name}"
        TokenFile(self.data_dir / "tokens.csv").add(token, User(name, f"uid-{name}", groups))
        config = dataclasses.replace(load_kubeconfig(self.server.kubeconfig_path), token=token)
        return RESTClient.from_kubeconfig(config)


@pytest.fixture
async def cluster(quiet_server: APIServer, rest: RESTClient) -> AsyncIterator[Cluster]:
    yield Cluster(quiet_server, rest, quiet_server.config.data_dir)


async def grant(admin: RESTClient, user: str, rules: list[Obj]) -> None:
    await admin.create(CLUSTER_ROLES, {"metadata": {"name": user}, "rules": rules})
    await admin.create(CLUSTER_ROLE_BINDINGS, {
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})


CSR_WRITER = {"apiGroups": ["certificates.k8s.io"], "verbs": ["create", "get", "update"],
              "resources": ["certificatesigningrequests",
                            "certificatesigningrequests/approval",
                            "certificatesigningrequests/status"]}


# -- the API ----------------------------------------------------------------------------------


async def test_the_requestor_is_the_creating_user_and_spec_is_immutable(
        cluster: Cluster) -> None:
    await grant(cluster.admin, "bob", [CSR_WRITER])
    bob = await cluster.user("bob", "devs")
    try:
        created = await bob.create(CSRS, new_csr("bob", request_pem("bob"), username="admin",
                                                 groups=["system:masters"]))
    finally:
        await bob.close()
    spec = created["spec"]
    assert (spec["username"], spec["uid"], spec["groups"]) == (
        "bob", "uid-bob", ["devs", "system:authenticated"])
    assert created["status"] == {} and "generation" not in created["metadata"]

    # The resource's own update changes metadata only; the spec stays as created.
    edited = {**created, "metadata": {**created["metadata"], "labels": {"team": "a"}},
              "spec": {**spec, "signerName": "example.com/other"}}
    updated = await cluster.admin.update(CSRS, edited)
    assert updated["metadata"]["labels"] == {"team": "a"}
    assert updated["spec"] == spec

    # Approving through the resource is refused; through approval it is stamped.
    with pytest.raises(StatusError) as refused:
        await cluster.admin.update(CSRS, approved(updated), subresource="status")
    assert (refused.value.code, refused.value.message) == (422, (
        'CertificateSigningRequest.certificates.k8s.io "bob" is invalid: status.conditions: '
        'Forbidden: updates may not add a condition of type "Approved"'))
    done = await cluster.admin.update(CSRS, approved(updated), subresource="approval")
    [condition] = done["status"]["conditions"]
    assert condition["lastUpdateTime"] and condition["lastTransitionTime"]

    listed = await cluster.admin.list(CSRS, field_selector=(
        f"spec.signerName={csrs.KUBE_APISERVER_CLIENT}"))
    assert [i["metadata"]["name"] for i in listed.items] == ["bob"]


async def test_approval_and_signing_need_the_verbs_on_the_signer(cluster: Cluster) -> None:
    await grant(cluster.admin, "carol", [CSR_WRITER])
    carol = await cluster.user("carol")
    try:
        created = await carol.create(CSRS, new_csr("carol", request_pem("carol")))
        with pytest.raises(StatusError) as refused:
            await carol.update(CSRS, approved(created), subresource="approval")
        assert (refused.value.code, refused.value.message) == (403, (
            'certificatesigningrequests.certificates.k8s.io "carol" is forbidden: user not '
            'permitted to approve requests with signerName '
            '"kubernetes.io/kube-apiserver-client"'))
        # Upstream's approver role grants it (approve on the signer by name).
        await cluster.admin.create(CLUSTER_ROLE_BINDINGS, {
            "metadata": {"name": "carol-approves"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:certificates.k8s.io:kube-apiserver-client-approver"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": "carol"}]})
        # An approval that rewrites the request keeps the stored one (signer, subject and
        # requestor are not the approver's to choose).
        forged = approved(created)
        forged["spec"] = {**created["spec"], "username": "admin", "groups": ["system:masters"],
                          "request": base64.b64encode(
                              request_pem("admin", "system:masters")).decode()}
        done = await carol.update(CSRS, forged, subresource="approval")
        assert done["spec"] == created["spec"] and csrs.is_approved(done)
        issued = {**done, "status": {**done["status"], "certificate": base64.b64encode(
            request_pem("x")).decode()}}
        with pytest.raises(StatusError) as unsigned:
            await carol.update(CSRS, issued, subresource="status")
        assert "user not permitted to sign requests with signerName" in unsigned.value.message
    finally:
        await carol.close()


async def test_no_system_masters_through_the_kube_apiserver_client_signer(
        cluster: Cluster) -> None:
    with pytest.raises(StatusError) as refused:
        await cluster.admin.create(CSRS, new_csr("root", request_pem("root", "system:masters")))
    assert (refused.value.code, refused.value.message) == (403, (
        'certificatesigningrequests.certificates.k8s.io "root" is forbidden: use of '
        "kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"))
    # Another signer's business.
    await cluster.admin.create(CSRS, new_csr("mine", request_pem("root", "system:masters"),
                                             signer="example.com/mine"))


# -- the signer -------------------------------------------------------------------------------


async def _synced(*informers: Any) -> None:
    for informer in informers:
        informer.start()
    await asyncio.gather(*(i.wait_for_sync() for i in informers))


async def _until_cached(signer: CSRSigner | CSRCleaner, name: str, check: Any) -> Obj:
    for _ in range(200):
        obj = signer.requests.get(name)
        if obj is not None and check(obj):
            return obj
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} never reached the cache as expected")


async def test_the_signer_issues_from_the_cluster_ca(cluster: Cluster) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(now)
    signer = CSRSigner(cluster.admin, ClusterCA(cluster.data_dir), clock=clock)
    await _synced(*signer.informers)
    try:
        created = await cluster.admin.create(CSRS, new_csr(
            "dave", request_pem("dave", "devs", "ops"), expirationSeconds=3600,
            usages=("digital signature", "client auth")))
        await _until_cached(signer, "dave", lambda _o: True)
        await signer.sync("dave")  # not approved: nothing
        assert not (await cluster.admin.get(CSRS, "", "dave")).get("status")
        await cluster.admin.update(CSRS, approved(created), subresource="approval")
        await _until_cached(signer, "dave", csrs.is_approved)
        await signer.sync("dave")
        got = await cluster.admin.get(CSRS, "", "dave")
    finally:
        for informer in signer.informers:
            await informer.stop()
    pem = base64.b64decode(got["status"]["certificate"])
    cert = x509.load_pem_x509_certificate(pem)
    ca = x509.load_pem_x509_certificate((cluster.data_dir / "pki" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == "CN=dave,O=ops,O=devs"
    assert cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == \
        KEY.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    # One hour is short-lived: backdated 5 minutes at the start only.
    assert cert.not_valid_before_utc == now - timedelta(minutes=5)
    assert cert.not_valid_after_utc == now + timedelta(hours=1)
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not usage.value.key_encipherment
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    assert csrs.condition_summary(got) == "Approved,Issued"


async def test_a_request_its_signer_refuses_fails(cluster: Cluster) -> None:
    signer = CSRSigner(cluster.admin, ClusterCA(cluster.data_dir))
    await _synced(*signer.informers)
    try:
        created = await cluster.admin.create(CSRS, new_csr(
            "eve", request_pem("eve"), usages=("server auth",)))
        await cluster.admin.update(CSRS, approved(created), subresource="approval")
        await _until_cached(signer, "eve", csrs.is_approved)
        await signer.sync("eve")
        got = await cluster.admin.get(CSRS, "", "eve")
        await _until_cached(signer, "eve", lambda o: csrs.has_true_condition(o, csrs.FAILED))
        await signer.sync("eve")  # failed: left alone
        again = await cluster.admin.get(CSRS, "", "eve")
        assert len(csrs.find_conditions(again, csrs.FAILED)) == 1
        assert not (again.get("status") or {}).get("certificate")
    finally:
        for informer in signer.informers:
            await informer.stop()
    failed = csrs.find_conditions(got, csrs.FAILED)
    assert [(c["reason"], c["message"]) for c in failed] == [
        ("SignerValidationFailure", "invalid usage for client certificate: server auth")]
    assert "certificate" not in got["status"]
    assert csrs.condition_summary(got) == "Approved,Failed"


# -- the cleaner ------------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _stored(conditions: list[Obj], certificate: bytes = b"") -> Obj:
    status: Obj = {"conditions": conditions}
    if certificate:
        status["certificate"] = base64.b64encode(certificate).decode()
    return {"metadata": {"name": "x", "creationTimestamp": rfc3339(T0)}, "status": status}


def _cert(not_after: datetime) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(KEY.public_key()).serial_number(1).not_valid_before(T0)
            .not_valid_after(not_after).sign(KEY, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM))


def _at(ctype: str, when: datetime) -> Obj:
    return {"type": ctype, "status": "True", "lastUpdateTime": rfc3339(when)}


@pytest.mark.parametrize(("obj", "deadline"), [
    (_stored([]), T0 + timedelta(hours=24)),  # pending: a day after creation
    (_stored([_at("Denied", T0 + timedelta(hours=2))]), T0 + timedelta(hours=3)),
    (_stored([_at("Approved", T0), _at("Failed", T0 + timedelta(minutes=5))]),
     T0 + timedelta(hours=1, minutes=5)),
    # Approved and issued: an hour after approval, or the certificate's expiry if sooner.
    (_stored([_at("Approved", T0)], _cert(T0 + timedelta(days=9))), T0 + timedelta(hours=1)),
    (_stored([_at("Approved", T0)], _cert(T0 + timedelta(minutes=20))),
     T0 + timedelta(minutes=20)),
    # Approved, never issued: kept (upstream counts only issued requests).
    (_stored([_at("Approved", T0)]), None),
    # An issued certificate that does not parse: upstream's handle errors out, nothing goes.
    (_stored([_at("Approved", T0)], b"junk"), None),
])
def test_cleanup_deadlines(obj: Obj, deadline: datetime | None) -> None:
    assert cleanup_deadline(obj) == deadline


async def test_the_cleaner_deletes_past_the_deadline(cluster: Cluster) -> None:
    clock = FakeClock(datetime.now(UTC))
    cleaner = CSRCleaner(cluster.admin, clock=clock)
    await _synced(*cleaner.informers)
    try:
        await cluster.admin.create(CSRS, new_csr("old", request_pem("old")))
        await _until_cached(cleaner, "old", lambda _o: True)
        await cleaner.sync("old")  # a fresh pending request stays, queued for its deadline
        assert (await cluster.admin.get(CSRS, "", "old"))["metadata"]["name"] == "old"
        clock.advance(24 * 3600 + 2)
        await cleaner.sync("old")
        with pytest.raises(StatusError) as gone:
            await cluster.admin.get(CSRS, "", "old")
        assert gone.value.code == 404
    finally:
        for informer in cleaner.informers:
            await informer.stop()
