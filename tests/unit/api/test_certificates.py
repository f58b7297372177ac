"""certificates.k8s.io/v1 CertificateSigningRequests: validation after upstream's
validation_test.go (paths and messages), the strategies' preparation (strategy_test.go), the
built-in signers' checks (helpers_test.go, signer_test.go), the signing policy
(policies_test.go), the subject restriction admission, and the Table
(printCertificateSigningRequest)."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from svcnet.api import certificates as csrs
from svcnet.api.errors import FieldError
from tests.unit.apiserver.test_tables import cells, column_names, meta

Obj = dict[str, Any]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())


def request_pem(cn: str = "alice", orgs: tuple[str, ...] = ("devs",),
                dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> bytes:
    names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    names.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans.extend(x509.IPAddress(ipaddress.ip_address(i)) for i in ips)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def csr(pem: bytes | None = None, *, signer: str = csrs.KUBE_APISERVER_CLIENT,
        usages: list[str] | None = None, **spec: Any) -> Obj:
    return {"apiVersion": csrs.API_VERSION, "kind": csrs.KIND,
            "metadata": {"name": "alice", "resourceVersion": "3"},
            "spec": {"request": b64(pem or request_pem()), "signerName": signer,
                     "usages": ["client auth"] if usages is None else usages, **spec}}


def with_conditions(obj: Obj, *conditions: Obj, certificate: bytes = b"") -> Obj:
    status: Obj = {"conditions": list(conditions)}
    if certificate:
        status["certificate"] = b64(certificate)
    return {**obj, "status": status}


def cond(ctype: str, status: str = "True", **extra: Any) -> Obj:
    return {"type": ctype, "status": status, "reason": "R", "message": "m", **extra}


def messages(errs: list[FieldError]) -> list[str]:
    return [str(e) for e in errs]


def a_certificate(not_after: datetime = NOW + timedelta(days=1)) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(KEY.public_key()).serial_number(1)
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(not_after)
            .sign(KEY, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


# -- create validation -------------------------------------------------------------------------


def test_a_valid_request() -> None:
    assert csrs.validate_csr(csr()) == []
    assert csrs.validate_csr(csr(expirationSeconds=600)) == []


def test_the_request_must_be_a_certificate_request_pem_block() -> None:
    [err] = csrs.validate_csr(csr(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
    assert (err.field, err.detail) == ("spec.request",
                                       "PEM block type must be CERTIFICATE REQUEST")
    # The bad value is the []byte as Go's %#v prints it.
    assert str(err).startswith("spec.request: Invalid value: []byte{0x2d, 0x2d, 0x2d")
    [missing] = csrs.validate_csr({**csr(), "spec": {"signerName": csrs.KUBE_APISERVER_CLIENT,
                                                      "usages": ["client auth"]}})
    assert str(missing) == ("spec.request: Invalid value: []byte(nil): PEM block type must "
                            "be CERTIFICATE REQUEST")


def test_the_signature_must_verify() -> None:
    der = bytearray(x509.load_pem_x509_csr(request_pem()).public_bytes(
        serialization.Encoding.DER))
    der[-3] ^= 0xFF  # inside the signature
    tampered = (b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der))
                + b"-----END CERTIFICATE REQUEST-----\n")
    [err] = csrs.validate_csr(csr(tampered))
    assert (err.field, err.detail) == ("spec.request", "x509: ECDSA verification failure")


def test_usages_are_required_known_and_unique() -> None:
    assert messages(csrs.validate_csr(csr(usages=[]))) == ["spec.usages: Required value"]
    [unknown] = csrs.validate_csr(csr(usages=["client auth", "flying"]))
    assert unknown.field == "spec.usages[1]"
    assert str(unknown).startswith('spec.usages[1]: Unsupported value: "flying": supported '
                                   'values: "any", "cert sign", "client auth", ')
    assert messages(csrs.validate_csr(csr(usages=["client auth", "client auth"]))) == [
        'spec.usages[1]: Duplicate value: "client auth"']


@pytest.mark.parametrize(("signer", "expected"), [
    ("", ["spec.signerName: Required value"]),
    ("example.com", ['spec.signerName: Invalid value: "example.com": must be a fully '
                     "qualified domain and path of the form 'example.com/signer-name'"]),
    ("example/signer", ['spec.signerName: Invalid value: "example": should be a domain with '
                        "at least two segments separated by dots"]),
    ("Example.com/x", ['spec.signerName: Invalid value: "Example.com": validating label '
                       '"Example": a lowercase RFC 1123 label must consist of lower case '
                       "alphanumeric characters or '-', and must start and end with an "
                       "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                       "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
    (csrs.LEGACY_UNKNOWN, ['spec.signerName: Invalid value: "kubernetes.io/legacy-unknown": '
                           "the legacy signerName is not allowed via this API version"]),
    ("example.com/my-signer", []),
])
def test_signer_names(signer: str, expected: list[str]) -> None:
    assert messages(csrs.validate_csr(csr(signer=signer))) == expected


def test_expiration_seconds_at_least_ten_minutes() -> None:
    assert messages(csrs.validate_csr(csr(expirationSeconds=599))) == [
        "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 "
        "seconds (10 minutes)"]


def test_conditions() -> None:
    bad = with_conditions(csr(), cond("Approved", "False"), cond("", "True"),
                          cond("Denied"), cond("Custom", ""), cond("Custom", "Unknown"))
    assert messages(csrs.validate_csr(bad)) == [
        'status.conditions[0].status: Unsupported value: "False": supported values: "True"',
        "status.conditions[1].type: Required value",
        'status.conditions[2].type: Invalid value: "Denied": Approved and Denied conditions '
        "are mutually exclusive",
        "status.conditions[3].status: Required value",
        'status.conditions[4].type: Duplicate value: "Custom"']


def test_the_certificate_holds_only_certificate_blocks() -> None:
    assert csrs.validate_csr(with_conditions(csr(), certificate=a_certificate())) == []
    [err] = csrs.validate_csr(with_conditions(csr(), certificate=b"junk"))
    assert str(err) == ('status.certificate: Invalid value: "<certificate data>": must '
                        "contain at least one CERTIFICATE PEM block")
    [err] = csrs.validate_csr(with_conditions(csr(), certificate=request_pem()))
    assert err.detail == 'only CERTIFICATE PEM blocks are allowed, found "CERTIFICATE REQUEST"'


# -- update validation -------------------------------------------------------------------------


def test_updates_may_not_remove_approval_denial_or_failure() -> None:
    old = with_conditions(csr(), cond("Approved"), cond("Failed"))
    for validate in (csrs.validate_csr_update, csrs.validate_csr_status_update,
                     csrs.validate_csr_approval_update):
        assert messages(validate(with_conditions(csr()), old)) == [
            'status.conditions: Forbidden: updates may not remove a condition of type '
            '"Approved"',
            'status.conditions: Forbidden: updates may not remove a condition of type '
            '"Failed"']


def test_only_approval_adds_or_changes_approved_and_denied() -> None:
    old = with_conditions(csr())
    new = with_conditions(csr(), cond("Approved"))
    expected = ['status.conditions: Forbidden: updates may not add a condition of type '
                '"Approved"']
    assert messages(csrs.validate_csr_update(new, old)) == expected
    assert messages(csrs.validate_csr_status_update(new, old)) == expected
    assert csrs.validate_csr_approval_update(new, old) == []
    changed = with_conditions(csr(), cond("Approved", message="other"))
    [err] = csrs.validate_csr_status_update(changed, new)
    assert err.detail.startswith('updates may not modify a condition of type "Approved"\n')
    assert csrs.validate_csr_approval_update(changed, new) == []


def test_only_status_sets_the_certificate_and_only_once() -> None:
    old = with_conditions(csr(), cond("Approved"))
    issued = with_conditions(csr(), cond("Approved"), certificate=a_certificate())
    assert csrs.validate_csr_status_update(issued, old) == []
    for validate in (csrs.validate_csr_update, csrs.validate_csr_approval_update):
        assert messages(validate(issued, old)) == [
            "status.certificate: Forbidden: updates may not set certificate content"]
    reissued = with_conditions(csr(), cond("Approved"), certificate=a_certificate(NOW))
    assert messages(csrs.validate_csr_status_update(reissued, issued)) == [
        "status.certificate: Forbidden: updates may not modify existing certificate content"]


def test_what_the_stored_object_broke_is_tolerated() -> None:
    # Both Approved and Denied, a duplicate usage: kept by an update that changes neither.
    old = with_conditions(csr(usages=["client auth", "client auth"]), cond("Approved"),
                          cond("Denied"))
    new = {**old, "metadata": {**old["metadata"], "labels": {"a": "b"}}}
    assert csrs.validate_csr_update(new, old) == []
    assert csrs.validate_csr(new) != []


# -- preparation -------------------------------------------------------------------------------


def test_create_takes_the_requestor_from_the_user_and_empties_the_status() -> None:
    given = with_conditions(csr(username="mallory", uid="1", groups=["system:masters"],
                                extra={"x": ["y"]}), cond("Approved"),
                            certificate=a_certificate())
    out = csrs.prepare_for_create(given, csrs.Requestor(
        "alice", "u-1", ("devs", "system:authenticated"), {"scopes": ("a",)}))
    assert {k: out["spec"][k] for k in ("username", "uid", "groups", "extra")} == {
        "username": "alice", "uid": "u-1", "groups": ["devs", "system:authenticated"],
        "extra": {"scopes": ["a"]}}
    assert out["status"] == {}
    anonymous = csrs.prepare_for_create(given, None)
    assert not {"username", "uid", "groups", "extra"} & set(anonymous["spec"])
    assert given["spec"]["username"] == "mallory"  # the input is not mutated


def test_the_resource_update_keeps_spec_and_status() -> None:
    old = with_conditions(csr(), cond("Approved"))
    new = {**csr(signer="example.com/other"), "metadata": {"name": "alice", "labels": {"a": "b"}}}
    out = csrs.prepare_for_update(new, old)
    assert (out["spec"], out["status"], out["metadata"]["labels"]) == (
        old["spec"], old["status"], {"a": "b"})


def test_approval_changes_only_the_conditions_and_stamps_them() -> None:
    then = "2026-02-01T00:00:00Z"
    old = with_conditions(csr(), cond("Custom", lastTransitionTime=then),
                          certificate=a_certificate())
    new = with_conditions(csr(signer="example.com/other"),
                          cond("Custom", lastUpdateTime=None), cond("Approved"))
    out = csrs.prepare_for_approval_update(new, old, NOW)
    # An approver cannot rewrite what it approves (signer, request, requestor).
    assert out["spec"] == old["spec"] and out["spec"]["signerName"] != "example.com/other"
    assert out["status"]["certificate"] == old["status"]["certificate"]
    custom, approved = out["status"]["conditions"]
    # The lastTransitionTime of a condition of the same type and status is kept.
    assert (custom["lastTransitionTime"], custom["lastUpdateTime"]) == (
        then, "2026-03-01T12:00:00Z")
    assert approved["lastTransitionTime"] == approved["lastUpdateTime"] == \
        "2026-03-01T12:00:00Z"


def test_status_keeps_the_stored_approval() -> None:
    old = with_conditions(csr(), cond("Approved", message="yes"))
    new = with_conditions(csr(), cond("Approved", message="forged"),
                          certificate=a_certificate())
    out = csrs.prepare_for_status_update(new, old, NOW)
    assert out["status"]["conditions"][0]["message"] == "yes"
    assert out["status"]["certificate"] == new["status"]["certificate"]


# -- admission, signers, policy ----------------------------------------------------------------


def test_subject_restriction() -> None:
    masters = csr(request_pem(orgs=("system:masters",)))
    assert csrs.subject_restriction_error(masters) == (
        "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not "
        "allowed")
    assert csrs.subject_restriction_error(csr()) is None
    other = csr(request_pem(orgs=("system:masters",)), signer="example.com/x")
    assert csrs.subject_restriction_error(other) is None


@pytest.mark.parametrize(("signer", "pem", "usages", "problem"), [
    (csrs.KUBE_APISERVER_CLIENT, request_pem(), ["client auth"], None),
    (csrs.KUBE_APISERVER_CLIENT, request_pem(), ["digital signature", "key encipherment",
                                                 "client auth"], None),
    (csrs.KUBE_APISERVER_CLIENT, request_pem(), ["server auth", "client auth"],
     "invalid usage for client certificate: server auth"),
    (csrs.KUBE_APISERVER_CLIENT, request_pem(), ["digital signature"],
     "missing required usage for client certificate: client auth"),
    (csrs.KUBELET_SERVING, request_pem("system:node:n1", ("system:nodes",), ("n1",)),
     ["digital signature", "server auth"], None),
    (csrs.KUBELET_SERVING, request_pem("system:node:n1", ("system:nodes",)),
     ["digital signature", "server auth"], "DNS or IP subjectAltName is required"),
    (csrs.KUBELET_SERVING, request_pem("system:node:n1", ("devs",), ips=("10.0.0.1",)),
     ["digital signature", "server auth"], "subject organization is not system:nodes"),
    (csrs.KUBELET_SERVING, request_pem("system:node:n1", ("system:nodes",), ("n1",)),
     ["server auth"], "usages did not match [digital signature key encipherment server auth]"),
    (csrs.KUBELET_SERVING, request_pem("n1", ("system:nodes",), ("n1",)),
     ["digital signature", "server auth"],
     "subject common name does not begin with system:node:"),
    (csrs.KUBE_APISERVER_CLIENT_KUBELET, request_pem("system:node:n1", ("system:nodes",)),
     ["digital signature", "key encipherment", "client auth"], None),
    (csrs.KUBE_APISERVER_CLIENT_KUBELET, request_pem("system:node:n1", ("system:nodes",),
                                                     ("n1",)),
     ["digital signature", "client auth"], "DNS subjectAltNames are not allowed"),
])
def test_signer_checks(signer: str, pem: bytes, usages: list[str], problem: str | None) -> None:
    assert csrs.signer_check(x509.load_pem_x509_csr(pem), usages, signer) == (True, problem)


def test_other_signers_are_not_recognized() -> None:
    request = x509.load_pem_x509_csr(request_pem())
    for signer in ("example.com/mine", csrs.LEGACY_UNKNOWN):
        assert csrs.signer_check(request, ["client auth"], signer) == (False, None)


def test_usages_become_x509_key_usages_in_go_order() -> None:
    got = csrs.x509_usages(["client auth", "signing", "server auth", "key encipherment",
                            "s/mime", "email protection"])
    assert got.key_usage == {"digital_signature", "key_encipherment"}
    assert got.extended == (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH,
                            ExtendedKeyUsageOID.EMAIL_PROTECTION)
    with pytest.raises(ValueError, match=r'unrecognized usage values: \["flying"\]'):
        csrs.x509_usages(["client auth", "flying"])


def test_the_requested_duration_is_clamped() -> None:
    year = timedelta(days=365)
    assert csrs.requested_duration(None, year) == year
    assert csrs.requested_duration(3600, year) == timedelta(hours=1)
    assert csrs.requested_duration(60, year) == timedelta(minutes=10)
    assert csrs.requested_duration(10 ** 9, year) == year


def test_the_validity_window() -> None:
    far = NOW + timedelta(days=3650)
    # Long-lived: backdated 5 minutes at both ends; short-lived: only at the start.
    assert csrs.validity_window(timedelta(days=1), NOW, far) == (
        NOW - timedelta(minutes=5), NOW + timedelta(days=1) - timedelta(minutes=5))
    assert csrs.validity_window(timedelta(hours=1), NOW, far) == (
        NOW - timedelta(minutes=5), NOW + timedelta(hours=1))
    # Never past the signer's own expiry.
    soon = NOW + timedelta(hours=2)
    assert csrs.validity_window(timedelta(days=1), NOW, soon)[1] == soon
    with pytest.raises(ValueError, match="refusing to sign a certificate that expired"):
        csrs.validity_window(timedelta(days=1), NOW, NOW - timedelta(minutes=1))
    with pytest.raises(ValueError, match="the signer has expired"):
        csrs.validity_window(timedelta(days=1), NOW, NOW - timedelta(minutes=10))


# -- the Table ---------------------------------------------------------------------------------


def test_table_columns_and_cells() -> None:
    assert column_names(csrs.API_VERSION, csrs.KIND) == [
        ("Name", 0), ("Age", 0), ("SignerName", 0), ("Requestor", 0),
        ("RequestedDuration", 0), ("Condition", 0)]
    base = {**csr(username="alice"), "metadata": meta("alice", None)}
    assert cells(csrs.API_VERSION, csrs.KIND, base) == [
        "alice", "5m", csrs.KUBE_APISERVER_CLIENT, "alice", "<none>", "Pending"]
    issued = with_conditions({**base, "spec": {**base["spec"], "expirationSeconds": 86400}},
                             cond("Approved"), certificate=a_certificate())
    assert cells(csrs.API_VERSION, csrs.KIND, issued)[4:] == ["24h", "Approved,Issued"]
    denied = with_conditions(base, cond("Denied"), cond("Failed"))
    assert cells(csrs.API_VERSION, csrs.KIND, denied)[5] == "Denied,Failed"
