"""The CNI plugin without root: the protocol (environment, versions, error objects), results,
the configuration and the conflist, the executable's wrapper, DEL/GC bookkeeping and CHECK's
findings, and the executable's import diet. Namespaces, veths and the alias are tested for
real in tests/integration/test_cni.py.

Test address plan: the node's pod CIDR 10.244.1.0/24, gateway 10.244.1.1; cluster ``t4``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from pathlib import Path
from typing import Any

import pytest

from svcnet.node.cni import main as cni_main, plugin
from svcnet.node.cni.config import (
    BridgeConf,
    NetConf,
    conflist,
    netconf_from_conflist,
    parse_netconf,
)
from svcnet.node.cni.spec import (
    CNIArgs,
    CNIError,
    Code,
    Interface,
    IPConfig,
    Result,
    Route,
    check_version,
    invocation_from_env,
    parse_cni_args,
    version_info,
)
from svcnet.node.ipam import PodIPAM, pod_ipv6

CID = "4f1d0c3b2a19e8d7c6b5a49382716f5e4d3c2b1a0f9e8d7c6b5a493827160f5e"
POD_UID = "0f8e3c1a-2b9d-4c8e-9a51-7d2f1e0b6c3a"
CNI_ARGS = f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID={CID};" \
           f"K8S_POD_UID={POD_UID}"


def env(command: str = "ADD", **extra: str) -> dict[str, str]:
    out = {"CNI_COMMAND": command, "CNI_CONTAINERID": CID, "CNI_NETNS": "/var/run/netns/cni-1",
           "CNI_IFNAME": "eth0", "CNI_ARGS": CNI_ARGS, "CNI_PATH": "/opt/cni/bin"}
    out.update(extra)
    return {k: v for k, v in out.items() if v != "-"}


def plugin_conf(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "svcnet", "type": "svcnet-cni",
                            "subnet": "10.244.1.0/24", "dataDir": str(tmp_path / "data"),
                            "netnsPrefix": "svcnet-t4-"}
    conf.update(fields)
    return {k: v for k, v in conf.items() if v is not None}


def bridge_conf(tmp_path: Path, **fields: Any) -> BridgeConf:
    conf = parse_netconf(json.dumps(plugin_conf(tmp_path, **fields)))
    assert isinstance(conf, BridgeConf)
    return conf


# --- the environment --------------------------------------------------------------------------


def test_invocation_from_env() -> None:
    inv = invocation_from_env(env())
    assert inv.command == "ADD"
    assert inv.args == CNIArgs(CID, "/var/run/netns/cni-1", "eth0", {
        "K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web",
        "K8S_POD_INFRA_CONTAINER_ID": CID, "K8S_POD_UID": POD_UID})
    assert inv.args.pod_uid == POD_UID
    assert invocation_from_env({"CNI_COMMAND": "VERSION"}).args is None
    # DEL may come without a namespace (it is gone); CNI_ARGS may be absent.
    deleted = invocation_from_env(env("DEL", CNI_NETNS="-", CNI_ARGS="-")).args
    assert deleted is not None and deleted.netns == "" and deleted.pod_uid is None


@pytest.mark.parametrize(("variables", "detail"), [
    pytest.param(env("GC"), "'GC'", id="unknown-command"),
    pytest.param(env(CNI_COMMAND="-"), "''", id="no-command"),
    pytest.param(env(CNI_NETNS="-", CNI_IFNAME="-"), "CNI_IFNAME, CNI_NETNS", id="missing"),
    pytest.param(env("CHECK", CNI_CONTAINERID="-"), "CNI_CONTAINERID", id="check-no-id"),
    pytest.param(env(CNI_CONTAINERID="../etc"), "must match", id="bad-container-id"),
    pytest.param(env(CNI_IFNAME="a-very-long-interface"), "longer than 15", id="long-ifname"),
    pytest.param(env(CNI_NETNS="netns/x"), "not an absolute path", id="relative-netns"),
    pytest.param(env(CNI_ARGS="K8S_POD_UID"), "is not K=V", id="bad-args"),
])
def test_bad_environment_is_code_4(variables: dict[str, str], detail: str) -> None:
    with pytest.raises(CNIError) as info:
        invocation_from_env(variables)
    assert info.value.code == Code.INVALID_ENV.value == 4
    assert detail in info.value.details


def test_parse_cni_args() -> None:
    assert parse_cni_args("") == {}
    assert parse_cni_args("IgnoreUnknown=1;A=;B=c") == {"IgnoreUnknown": "1", "A": "", "B": "c"}
    with pytest.raises(CNIError):
        parse_cni_args("A=b=c")


# --- versions and errors ----------------------------------------------------------------------


def test_version_info() -> None:
    assert version_info() == {"cniVersion": "1.0.0",
                              "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]}


@pytest.mark.parametrize(("version", "command", "ok"), [
    ("1.0.0", "ADD", True), ("0.3.0", "ADD", True), ("0.4.0", "CHECK", True),
    ("0.3.1", "CHECK", False), ("1.1.0", "ADD", False), ("0.2.0", "DEL", False),
])
def test_check_version(version: str, command: str, ok: bool) -> None:
    if ok:
        check_version(version, command)
        return
    with pytest.raises(CNIError) as info:
        check_version(version, command)
    assert info.value.code == Code.INCOMPATIBLE_VERSION.value == 1


def test_error_json() -> None:
    err = CNIError(Code.INVALID_CONFIG, "invalid network configuration", "subnet: missing")
    assert err.to_json("0.4.0") == {"cniVersion": "0.4.0", "code": 7,
                                    "msg": "invalid network configuration",
                                    "details": "subnet: missing"}
    assert "details" not in CNIError(11, "try again later").to_json()


# --- results ----------------------------------------------------------------------------------

RESULT = Result(
    interfaces=(Interface("vethdk3ztyamwgm", "3a:11:22:33:44:55"),
                Interface("eth0", "0a:58:0a:f4:01:05", "/var/run/netns/cni-1")),
    ips=(IPConfig(IPv4Interface("10.244.1.5/24"), IPv4Address("10.244.1.1"), 1),),
    routes=(Route(IPv4Network("0.0.0.0/0"), IPv4Address("10.244.1.1")),),
)


def test_result_json_1_0_0() -> None:
    assert RESULT.to_json("1.0.0") == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "vethdk3ztyamwgm", "mac": "3a:11:22:33:44:55"},
                       {"name": "eth0", "mac": "0a:58:0a:f4:01:05",
                        "sandbox": "/var/run/netns/cni-1"}],
        "ips": [{"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
        "dns": {},
    }
    assert RESULT.ip == IPv4Interface("10.244.1.5/24")


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_result_json_before_1_0_0_has_ip_versions(version: str) -> None:
    out = RESULT.to_json(version)
    assert out["cniVersion"] == version
    assert out["ips"] == [{"version": "4", "address": "10.244.1.5/24",
                           "gateway": "10.244.1.1", "interface": 1}]


@pytest.mark.parametrize("version", ["0.3.1", "1.0.0"])
def test_result_round_trip(version: str) -> None:
    assert Result.from_json(RESULT.to_json(version)) == RESULT


def test_bad_result_is_a_decoding_failure() -> None:
    with pytest.raises(CNIError) as info:
        Result.from_json({"ips": [{"address": "not an address"}]})
    assert info.value.code == Code.DECODING_FAILURE.value == 6


# --- the configuration ------------------------------------------------------------------------


def test_parse_netconf_defaults(tmp_path: Path) -> None:
    conf = bridge_conf(tmp_path)
    assert conf == BridgeConf(cni_version="1.0.0", name="svcnet",
                              subnet=IPv4Network("10.244.1.0/24"), data_dir=tmp_path / "data",
                              netns_prefix="svcnet-t4-")
    assert (conf.bridge, conf.hairpin, conf.node_netns) == ("svcnet0", True, None)
    assert conf.gateway_ip == IPv4Address("10.244.1.1")
    assert conf.names is not None and conf.names.pod_netns(POD_UID) == "svcnet-t4-pdk3z"


def test_parse_netconf_fields_and_prev_result(tmp_path: Path) -> None:
    conf = bridge_conf(tmp_path, gateway="10.244.1.254", bridge="br-pods", hairpin=False,
                       nodeNetns="svcnet-t4-n1", netnsPrefix=None,
                       prevResult=RESULT.to_json("1.0.0"), ipam={"type": "host-local"})
    assert conf.gateway_ip == IPv4Address("10.244.1.254")
    assert (conf.bridge, conf.hairpin, conf.node_netns, conf.names) == (
        "br-pods", False, "svcnet-t4-n1", None)
    assert conf.prev_result == RESULT


def test_parse_netconf_loopback() -> None:
    conf = parse_netconf(b'{"cniVersion": "0.3.1", "name": "cni-loopback", "type": "loopback"}')
    assert type(conf) is NetConf
    assert (conf.cni_version, conf.name, conf.type) == ("0.3.1", "cni-loopback", "loopback")


@pytest.mark.parametrize(("fields", "code", "detail"), [
    pytest.param({"subnet": None}, 7, "subnet: missing", id="no-subnet"),
    pytest.param({"subnet": "10.244.1.0/33"}, 7, "subnet", id="bad-subnet"),
    pytest.param({"subnet": "10.244.1.1/24"}, 7, "host bits", id="host-bits"),
    pytest.param({"subnet": "10.244.1.0/31"}, 7, "no addresses", id="tiny-subnet"),
    pytest.param({"gateway": "10.244.2.1"}, 7, "not a host address", id="gateway-outside"),
    pytest.param({"gateway": "10.244.1.0"}, 7, "not a host address", id="gateway-network"),
    pytest.param({"gateway": "ten"}, 7, "gateway", id="gateway-garbage"),
    pytest.param({"dataDir": None}, 7, "dataDir: missing", id="no-data-dir"),
    pytest.param({"dataDir": "state"}, 7, "not an absolute path", id="relative-data-dir"),
    pytest.param({"bridge": "bridge-name-too-long"}, 7, "longer than 15", id="long-bridge"),
    pytest.param({"netnsPrefix": "t4-"}, 7, "not a cluster prefix", id="bad-prefix"),
    pytest.param({"nodeNetns": "bad name"}, 7, "characters", id="bad-node-netns"),
    pytest.param({"hairpin": "yes"}, 7, "not a boolean", id="hairpin-string"),
    pytest.param({"type": "bridge"}, 7, "neither", id="other-type"),
    pytest.param({"cniVersion": None}, 7, "cniVersion: missing", id="no-version"),
    pytest.param({"name": ""}, 7, "name", id="empty-name"),
    pytest.param({"prevResult": {"ips": "x"}}, 6, "invalid", id="bad-prev-result"),
])
def test_bad_config(tmp_path: Path, fields: dict[str, Any], code: int, detail: str) -> None:
    with pytest.raises(CNIError) as info:
        parse_netconf(json.dumps(plugin_conf(tmp_path, **fields)))
    assert info.value.code == code
    assert detail in f"{info.value.msg}: {info.value.details}"


@pytest.mark.parametrize("data", [b"", b"{", b"[1]", b"\xff"])
def test_undecodable_config_is_code_6(data: bytes) -> None:
    with pytest.raises(CNIError) as info:
        parse_netconf(data)
    assert info.value.code == Code.DECODING_FAILURE


def test_conflist(tmp_path: Path) -> None:
    text = conflist("svcnet", "10.244.1.0/24", "10.244.1.1", "svcnet0",
                    tmp_path / "state", "svcnet-t4-")
    assert json.loads(text) == {
        "cniVersion": "1.0.0", "name": "svcnet",
        "plugins": [{"type": "svcnet-cni", "bridge": "svcnet0", "subnet": "10.244.1.0/24",
                     "gateway": "10.244.1.1", "dataDir": str(tmp_path / "state"),
                     "netnsPrefix": "svcnet-t4-", "hairpin": True}],
    }
    conf = netconf_from_conflist(text)
    assert conf == BridgeConf(cni_version="1.0.0", name="svcnet",
                              subnet=IPv4Network("10.244.1.0/24"), data_dir=tmp_path / "state",
                              gateway=IPv4Address("10.244.1.1"), netns_prefix="svcnet-t4-")
    bare = json.loads(conflist("n", "10.244.9.0/24", None, "svcnet0", "/s", None))
    assert "gateway" not in bare["plugins"][0] and "netnsPrefix" not in bare["plugins"][0]


def test_dual_stack_conflist_and_pod_ipv6(tmp_path: Path) -> None:
    text = conflist("svcnet", "10.244.1.0/24", None, "svcnet0", tmp_path, None,
                    subnet6="fd00:10:244:1::/64")
    conf = netconf_from_conflist(text)
    assert isinstance(conf, BridgeConf)
    assert conf.subnet6 == IPv6Network("fd00:10:244:1::/64")
    assert conf.gateway6_ip == IPv6Address("fd00:10:244:1::1")
    assert pod_ipv6(IPv4Interface("10.244.1.200/24"), conf.subnet, IPv6Network(
        "fd00:10:244:1::/64")) == IPv6Interface("fd00:10:244:1::c8/64")
    with pytest.raises(ValueError, match="not a host address"):
        pod_ipv6(IPv4Interface("10.244.2.5/24"), conf.subnet, IPv6Network("fd00::/64"))
    with pytest.raises(CNIError):  # smaller than the IPv4 subnet: no room for every offset
        conflist("n", "10.244.1.0/24", None, "svcnet0", tmp_path, None,
                 subnet6="fd00:10:244:1::/121")
    # A dual-stack result lists both addresses; .ip stays the IPv4 one.
    result = Result(ips=(IPConfig(IPv4Interface("10.244.1.5/24")),
                         IPConfig(IPv6Interface("fd00:10:244:1::5/64"))))
    again = Result.from_json(result.to_json())
    assert again == result and again.ip == IPv4Interface("10.244.1.5/24")
    assert again.ip6 == IPv6Interface("fd00:10:244:1::5/64")


def test_conflist_refuses_what_the_plugin_would() -> None:
    with pytest.raises(CNIError):
        conflist("svcnet", "10.244.1.0/24", "10.244.7.1", "svcnet0", "/state", None)
    with pytest.raises(CNIError):
        conflist("svcnet", "10.244.1.0/24", None, "svcnet0", "relative", None)
    with pytest.raises(CNIError):
        netconf_from_conflist('{"cniVersion": "1.0.0", "name": "x", "plugins": []}')


# --- the executable's wrapper -----------------------------------------------------------------


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             variables: dict[str, str], stdin: bytes) -> tuple[int, Any]:
    for key in list(env()):
        monkeypatch.delenv(key, raising=False)
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    rc = cni_main.main()
    out = capsys.readouterr().out
    return rc, json.loads(out) if out else None


def test_main_version(monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(monkeypatch, capsys, {"CNI_COMMAND": "VERSION"},
                    b'{"cniVersion": "0.4.0"}') == (0, version_info())


@pytest.mark.parametrize(("variables", "stdin", "code", "version"), [
    pytest.param(env(), b"not json", 6, "1.0.0", id="decoding"),
    pytest.param(env(), b'{"cniVersion": "0.4.0", "name": "n", "type": "svcnet-cni"}', 7,
                 "0.4.0", id="config-in-its-version"),
    pytest.param(env(), b'{"cniVersion": "9.9.9", "name": "n", "type": "loopback"}', 1,
                 "1.0.0", id="incompatible"),
    pytest.param(env("STATUS"), b"{}", 4, "1.0.0", id="unknown-command"),
    pytest.param(env(CNI_NETNS="/nonexistent/svcnet-cni-test"),
                 b'{"cniVersion": "0.3.1", "name": "lo", "type": "loopback"}', 3, "0.3.1",
                 id="no-netns"),
])
def test_main_errors(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                     variables: dict[str, str], stdin: bytes, code: int, version: str) -> None:
    rc, out = run_main(monkeypatch, capsys, variables, stdin)
    assert rc == 1
    assert out["code"] == code and out["cniVersion"] == version and out["msg"]


def test_main_reports_unexpected_exceptions(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(command: str, conf: NetConf, args: CNIArgs) -> Result | None:
        raise RuntimeError("bug")

    monkeypatch.setattr(plugin, "run", broken)
    rc, out = run_main(monkeypatch, capsys, env(),
                       b'{"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}')
    assert (rc, out["code"], out["details"]) == (1, cni_main.INTERNAL_ERROR, "RuntimeError: bug")


def test_main_loopback_del_is_a_no_op(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(monkeypatch, capsys, env("DEL", CNI_NETNS="-"),
                    b'{"cniVersion": "0.3.1", "name": "lo", "type": "loopback"}') == (0, None)


def test_executable_imports_stay_light() -> None:
    """The plugin's start-up is on every pod's start path: no asyncio (~90 ms here), aiohttp,
    API client or kubernetes, for VERSION nor for ADD/DEL/CHECK."""
    code = ("import sys; import svcnet.node.cni.main, svcnet.node.cni.config, "
            "svcnet.node.cni.plugin; print(sorted(m for m in ('asyncio', 'aiohttp', 'kubernetes',"
            " 'svcnet.client', 'svcnet.api', 'ssl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# --- DEL, GC and CHECK without a namespace ----------------------------------------------------


def test_del_without_netns_releases_and_tolerates_repeats(tmp_path: Path) -> None:
    conf = bridge_conf(tmp_path)
    ipam = PodIPAM("10.244.1.0/24", tmp_path / "data" / "ipam.json")
    ipam.allocate(CID)
    ipam.allocate("other")
    args = CNIArgs(CID, "", "eth0", {"K8S_POD_UID": POD_UID})
    plugin.cmd_del(conf, args)
    plugin.cmd_del(conf, args)
    assert set(ipam.allocations()) == {"other"}


def test_add_and_check_need_the_netns(tmp_path: Path) -> None:
    conf = bridge_conf(tmp_path)
    args = CNIArgs(CID, str(tmp_path / "missing"), "eth0", {})
    for command in (plugin.cmd_add, plugin.cmd_check):
        with pytest.raises(CNIError) as info:
            command(conf, args)
        assert info.value.code == Code.UNKNOWN_CONTAINER
    assert not (tmp_path / "data" / "ipam.json").exists()  # no address taken


def test_check_refuses_old_versions(tmp_path: Path) -> None:
    with pytest.raises(CNIError) as info:
        plugin.cmd_check(bridge_conf(tmp_path, cniVersion="0.3.1"), CNIArgs(CID, "/x"))
    assert info.value.code == Code.INCOMPATIBLE_VERSION


def test_gc_keeps_only_live_owners(tmp_path: Path) -> None:
    conf = bridge_conf(tmp_path)
    ipam = PodIPAM("10.244.1.0/24", tmp_path / "data" / "ipam.json")
    for owner in ("sandbox-live", "sandbox-dead", "pod-uid-live"):
        ipam.allocate(owner)
    records = tmp_path / "data" / "attachments"
    records.mkdir(parents=True)
    for owner in ("sandbox-live", "sandbox-dead"):
        (records / f"{owner}.json").write_text(json.dumps(
            {"netns": "/gone", "ifname": "eth0", "alias": None, "result": RESULT.to_json()}))
    assert plugin.cmd_gc(conf, ["sandbox-live", "pod-uid-live"]) == ["sandbox-dead"]
    assert set(ipam.allocations()) == {"sandbox-live", "pod-uid-live"}
    assert sorted(p.name for p in records.iterdir()) == ["sandbox-live.json"]


ADDRS: list[Any] = [{"ifname": "eth0", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
                     "address": "0a:58:0a:f4:01:05",
                     "addr_info": [{"family": "inet", "local": "10.244.1.5", "prefixlen": 24},
                                   {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]}]
ROUTES: list[Any] = [{"dst": "default", "gateway": "10.244.1.1", "dev": "eth0", "flags": []}]


def test_check_problems() -> None:
    ip, gw = IPv4Interface("10.244.1.5/24"), IPv4Address("10.244.1.1")
    assert plugin.check_problems(ADDRS, ROUTES, "eth0", ip, gw) == []
    assert plugin.check_problems([], [], "eth0", ip, gw) == ["no interface eth0"]
    down = [{**ADDRS[0], "flags": ["BROADCAST"], "address": "0a:58:0a:f4:01:06",
             "addr_info": []}]
    assert plugin.check_problems(down, [], "eth0", ip, gw) == [
        "eth0 is down", "eth0 has MAC 0a:58:0a:f4:01:06, not 0a:58:0a:f4:01:05",
        "eth0 lacks 10.244.1.5/24", "no default route via 10.244.1.1 dev eth0"]
    other_gw = [{**ROUTES[0], "gateway": "10.244.1.254"}]
    assert plugin.check_problems(ADDRS, other_gw, "eth0", ip, gw) == [
        "no default route via 10.244.1.1 dev eth0"]
