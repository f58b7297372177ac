"""The "add a user with a CSR" flow with the real kubectl against a real `svcnet server`:
``kubectl apply`` a CertificateSigningRequest, ``kubectl certificate approve``, the built-in
signer issues the certificate from the cluster CA (``pki/ca.crt`` in the data directory) with
the subject requested, ``kubectl certificate deny`` on another, ``kubectl get csr``'s columns,
and the official Python client's CertificatesV1Api."""

from __future__ import annotations

import base64
import json
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client, config

from tests.e2e.conftest import Cluster
from tests.waiting import wait_for


def _manifest(name: str, cn: str, *groups: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    pem = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return yaml.safe_dump({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": base64.b64encode(pem).decode(),
                 "signerName": "kubernetes.io/kube-apiserver-client",
                 "expirationSeconds": 86400, "usages": ["client auth"]}})


def _csr(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.get_json("csr", name)


def test_a_user_certificate_through_a_csr(cluster: Cluster) -> None:
    applied = cluster.kubectl("apply", "-f", "-", stdin=_manifest("csr-alice", "alice", "devs"))
    assert "certificatesigningrequest.certificates.k8s.io/csr-alice created" in applied.stdout
    cluster.kubectl("apply", "-f", "-", stdin=_manifest("csr-mallory", "mallory"))

    pending = cluster.kubectl("get", "csr", "csr-alice").stdout.splitlines()
    assert pending[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR",
                                  "REQUESTEDDURATION", "CONDITION"]
    assert pending[1].split()[2:] == ["kubernetes.io/kube-apiserver-client", "admin", "24h",
                                      "Pending"]

    approve = cluster.kubectl("certificate", "approve", "csr-alice")
    assert "certificatesigningrequest.certificates.k8s.io/csr-alice approved" in approve.stdout
    deny = cluster.kubectl("certificate", "deny", "csr-mallory")
    assert "certificatesigningrequest.certificates.k8s.io/csr-mallory denied" in deny.stdout

    issued = wait_for(lambda: _csr(cluster, "csr-alice")["status"].get("certificate"),
                      "the certificate of csr-alice", timeout=15)
    cert = x509.load_pem_x509_certificate(base64.b64decode(issued))
    ca = x509.load_pem_x509_certificate((cluster.data_dir / "pki" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string() == "CN=alice,O=devs"
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.total_seconds() == 86400  # 24h: backdated 5 minutes at both ends

    rows = {line.split()[0]: line.split()[-1]
            for line in cluster.kubectl("get", "csr").stdout.splitlines()[1:]}
    assert rows["csr-alice"] == "Approved,Issued"
    assert rows["csr-mallory"] == "Denied"
    [denied] = _csr(cluster, "csr-mallory")["status"]["conditions"]
    assert (denied["type"], denied["reason"]) == ("Denied", "KubectlDeny")
    assert "certificate" not in _csr(cluster, "csr-mallory")["status"]

    # A second approval of the same request changes nothing (kubectl skips it).
    again = cluster.kubectl("certificate", "approve", "csr-alice")
    assert again.returncode == 0
    assert len(_csr(cluster, "csr-alice")["status"]["conditions"]) == 1

    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        listed = client.CertificatesV1Api(api_client).list_certificate_signing_request(
            field_selector="spec.signerName=kubernetes.io/kube-apiserver-client")
        names = {i.metadata.name: i for i in listed.items}
        assert {"csr-alice", "csr-mallory"} <= set(names)
        assert names["csr-alice"].spec.username == "admin"
        assert names["csr-alice"].status.certificate == issued
    finally:
        api_client.close()

    cluster.kubectl("delete", "csr", "csr-alice", "csr-mallory")
    left = json.loads(cluster.kubectl("get", "csr", "-o", "json").stdout)["items"]
    assert not {i["metadata"]["name"] for i in left} & {"csr-alice", "csr-mallory"}
