"""The "add a user with a CSR" flow with the real kubectl against a real `svcnet server`:
``kubectl apply`` a CertificateSigningRequest, ``kubectl certificate approve``, the built-in
signer issues the certificate from the cluster CA (``pki/ca.crt`` in the data directory) with
the subject requested, which then authenticates its user, ``kubectl certificate deny`` on
another, ``kubectl get csr``'s columns, and the official Python client's CertificatesV1Api.

Then client certificates as kubeadm, kind and k3s write them into kubeconfigs
(``client-certificate-data``, ``client-key-data``), with kubectl and the Python client: the
CommonName is the user, each Organization a group, RBAC decides, and a certificate of another
CA fails the TLS handshake and an expired one is 401 Unauthorized."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from svcnet.apiserver.certs import ensure_ca, issue_client
from tests.e2e.conftest import Cluster
from tests.waiting import wait_for


def _manifest(name: str, cn: str, *groups: str) -> tuple[str, bytes]:
    """A CSR object's manifest, and the request's private key (PEM)."""
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
                 "expirationSeconds": 86400, "usages": ["client auth"]}}), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def _kubeconfig(cluster: Cluster, path: Path, user: str, cert_pem: bytes,
                key_pem: bytes) -> Path:
    """The cluster's kubeconfig with ``user`` authenticating by a client certificate."""
    doc = cluster.config
    doc["users"] = [{"name": user, "user": {
        "client-certificate-data": base64.b64encode(cert_pem).decode(),
        "client-key-data": base64.b64encode(key_pem).decode()}}]
    doc["contexts"][0]["context"]["user"] = user
    path.write_text(yaml.safe_dump(doc))
    return path


def _whoami(cluster: Cluster, kubeconfig: Path) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(cluster.kubectl(
        "--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json").stdout)
    info: dict[str, Any] = answer["status"]["userInfo"]
    return info


def _csr(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.get_json("csr", name)


def test_a_user_certificate_through_a_csr(cluster: Cluster, tmp_path: Path) -> None:
    alice, alice_key = _manifest("csr-alice", "alice", "devs")
    applied = cluster.kubectl("apply", "-f", "-", stdin=alice)
    assert "certificatesigningrequest.certificates.k8s.io/csr-alice created" in applied.stdout
    cluster.kubectl("apply", "-f", "-", stdin=_manifest("csr-mallory", "mallory")[0])

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
    # The certificate is alice's key to the cluster.
    kubeconfig = _kubeconfig(cluster, tmp_path / "alice", "alice", base64.b64decode(issued),
                             alice_key)
    assert _whoami(cluster, kubeconfig) == {"username": "alice",
                                            "groups": ["devs", "system:authenticated"]}

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


def test_kubectl_and_the_python_client_with_client_certificates(cluster: Cluster,
                                                                tmp_path: Path) -> None:
    jane = _kubeconfig(cluster, tmp_path / "jane", "jane",
                       *issue_client(cluster.data_dir, "jane", ["dev"]))
    assert _whoami(cluster, jane) == {"username": "jane",
                                      "groups": ["dev", "system:authenticated"]}
    table = cluster.kubectl("--kubeconfig", str(jane), "auth", "whoami").stdout
    assert table.split() == ["ATTRIBUTE", "VALUE", "Username", "jane", "Groups",
                             "[dev", "system:authenticated]"]

    refused = cluster.kubectl("--kubeconfig", str(jane), "get", "pods", check=False)
    assert refused.returncode == 1
    assert ('Error from server (Forbidden): pods is forbidden: User "jane" cannot list '
            'resource "pods" in API group "" in the namespace "default"') in refused.stderr
    api_client = config.new_client_from_config(config_file=str(jane))
    try:
        try:
            client.CoreV1Api(api_client).list_namespaced_pod("default")
            raise AssertionError("jane may not list pods yet")
        except ApiException as e:
            assert e.status == 403

        # The certificate's Organization is a group RBAC binds.
        cluster.kubectl("create", "rolebinding", "dev-view", "--clusterrole=view",
                        "--group=dev", "-n", "default")
        listed = cluster.kubectl("--kubeconfig", str(jane), "get", "pods")
        assert listed.returncode == 0
        assert client.CoreV1Api(api_client).list_namespaced_pod("default").items == []
        review = client.AuthenticationV1Api(api_client).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        assert review.status.user_info.username == "jane"
    finally:
        api_client.close()
        cluster.kubectl("delete", "rolebinding", "dev-view", "-n", "default")

    # An expired certificate of the cluster's CA: 401, as kubectl words it; another CA's
    # certificate for the same name fails the TLS handshake (clientcerts.py's module doc).
    ensure_ca(tmp_path / "other")
    expired = datetime.now(UTC) - timedelta(days=2)
    old = issue_client(cluster.data_dir, "jane", ["dev"], not_before=expired,
                       lifetime=timedelta(days=1))
    denied = cluster.kubectl("--kubeconfig", str(_kubeconfig(
        cluster, tmp_path / "old", "old", *old)), "get", "pods", check=False)
    assert denied.returncode == 1
    assert "error: You must be logged in to the server (Unauthorized)" in denied.stderr
    foreign = issue_client(tmp_path / "other", "jane", ["dev"])
    denied = cluster.kubectl("--kubeconfig", str(_kubeconfig(
        cluster, tmp_path / "eve", "eve", *foreign)), "get", "pods", check=False)
    # (kubectl words the refused handshake differently with and without cached discovery.)
    assert (denied.returncode, denied.stdout) == (1, ""), denied.stderr
    assert "Unauthorized" not in denied.stderr and "Forbidden" not in denied.stderr
