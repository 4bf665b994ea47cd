"""Where the PC is plugged in: VLAN and subnet checks against a fake interface table."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.network.interfaces import (
    Iface,
    PlacementRefused,
    check_placement,
    media_addresses,
    parse_vlan_config,
    read_vlan_config,
    system_interfaces,
    vlan_of,
)
from protocols.network_profile import NetworkProfile, load_network_profile_toml

EXAMPLES = Path(__file__).resolve().parents[3] / "hardware_profiles" / "network"
LOOPBACK = Iface("lo", ("127.0.0.1/8", "::1/128"), up=True)


def profile(vlan: int | None = 120, subnet: str | None = "10.20.120.0/24") -> NetworkProfile:
    lines = ['name = "rural-county"', "classroom_cap_kbps = 5000"]
    if vlan is not None:
        lines.append(f"vlan_id = {vlan}")
    if subnet is not None:
        lines.append(f'subnet = "{subnet}"')
    lines.append('ladder = [{ name = "720p", width = 1280, height = 720, kbps = 2000 }]')
    return load_network_profile_toml("\n".join(lines), "test")


@pytest.fixture
def no_vlan_table(tmp_path: Path) -> Path:
    return tmp_path / "absent-vlan-config"


def test_right_vlan_and_subnet_passes(no_vlan_table: Path) -> None:
    ifaces = [
        LOOPBACK,
        Iface("eth0", ("192.168.1.23/24", "fe80::1/64"), up=True),
        Iface("eth0.120", ("10.20.120.5/24",), up=True),
    ]
    placement = check_placement(profile(), ifaces, vlan_config=no_vlan_table)
    assert placement.ok, placement.message
    assert (placement.interface, placement.address, placement.vlan_found) == (
        "eth0.120",
        "10.20.120.5",
        120,
    )
    assert "eth0.120 10.20.120.5/24 (VLAN 120" in placement.message
    assert media_addresses(placement) == ["10.20.120.5"]


def test_wrong_subnet_is_refused_with_what_was_found_and_expected(no_vlan_table: Path) -> None:
    ifaces = [LOOPBACK, Iface("eth0", ("192.168.1.23/24", "fe80::1/64"), up=True)]
    placement = check_placement(profile(subnet="10.20.30.0/24"), ifaces, vlan_config=no_vlan_table)
    assert not placement.ok
    assert placement.message == (
        "refusing to stream: this PC's addresses are eth0 192.168.1.23/24 (no VLAN); "
        "the profile 'rural-county' expects VLAN 120, subnet 10.20.30.0/24; "
        "plug the PC into the recording-classroom port or fix the profile"
    )
    with pytest.raises(PlacementRefused, match="refusing to stream"):
        media_addresses(placement)


def test_right_subnet_wrong_vlan_is_refused(no_vlan_table: Path) -> None:
    ifaces = [Iface("enp3s0.130", ("10.20.120.5/24",), up=True)]
    placement = check_placement(profile(), ifaces, vlan_config=no_vlan_table)
    assert not placement.ok
    assert placement.vlan_found == 130
    assert "enp3s0.130 has 10.20.120.5/24" in placement.message
    assert "on VLAN 130, not VLAN 120" in placement.message
    assert "fix the switch port's VLAN or the profile" in placement.message


def test_untagged_access_port_passes_on_subnet_unless_a_tag_is_required(
    no_vlan_table: Path,
) -> None:
    ifaces = [Iface("eth0", ("10.20.120.5/24",), up=True)]
    placement = check_placement(profile(), ifaces, vlan_config=no_vlan_table)
    assert placement.ok and placement.vlan_found is None
    assert "only the subnet was checked" in placement.message
    strict = check_placement(profile(), ifaces, vlan_config=no_vlan_table, require_vlan_tag=True)
    assert not strict.ok
    assert "untagged (no VLAN visible on this PC), not VLAN 120" in strict.message


def test_no_interface_up(no_vlan_table: Path) -> None:
    ifaces = [Iface("eth0", ("10.20.120.5/24",), up=False), Iface("wlan0", (), up=True)]
    placement = check_placement(profile(), ifaces, vlan_config=no_vlan_table)
    assert not placement.ok
    assert placement.interface is None
    assert "no network interface is up with an address (down: eth0)" in placement.message
    assert "expects VLAN 120, subnet 10.20.120.0/24" in placement.message
    assert "check the cable" in placement.message


def test_down_interface_in_subnet_does_not_count(no_vlan_table: Path) -> None:
    ifaces = [
        Iface("eth0.120", ("10.20.120.5/24",), up=False),
        Iface("eth1", ("192.168.1.23/24",), up=True),
    ]
    placement = check_placement(profile(), ifaces, vlan_config=no_vlan_table)
    assert not placement.ok
    assert "this PC's addresses are eth1 192.168.1.23/24 (no VLAN)" in placement.message


def test_vlan_only_profile(no_vlan_table: Path) -> None:
    ok = check_placement(
        profile(subnet=None),
        [Iface("vlan120", ("fe80::2/64", "172.16.0.9/16"), up=True)],
        vlan_config=no_vlan_table,
    )
    assert ok.ok and ok.address == "172.16.0.9" and ok.vlan_found == 120
    refused = check_placement(
        profile(subnet=None),
        [Iface("eth0", ("172.16.0.9/16",), up=True)],
        vlan_config=no_vlan_table,
    )
    assert not refused.ok
    assert "add its subnet to the profile" in refused.message


def test_profile_without_vlan_or_subnet_passes_and_says_so() -> None:
    placement = check_placement(profile(vlan=None, subnet=None), [])
    assert placement.ok
    assert "names no VLAN and no subnet" in placement.message
    assert media_addresses(placement) == []  # do not pin: ICE picks


def test_loopback_demo_profile_binds_loopback(no_vlan_table: Path) -> None:
    text = (EXAMPLES / "loopback-demo.toml").read_text(encoding="utf-8")
    demo = load_network_profile_toml(text, "loopback-demo.toml")
    placement = check_placement(demo, [LOOPBACK], vlan_config=no_vlan_table)
    assert placement.ok and media_addresses(placement) == ["127.0.0.1"]


VLAN_CONFIG = """\
VLAN Dev name\t | VLAN ID
Name-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD
eth0.120       | 120  | eth0
classroom      | 110  | enp3s0
"""


def test_proc_net_vlan_config_parsing(tmp_path: Path) -> None:
    assert parse_vlan_config(VLAN_CONFIG) == {"eth0.120": 120, "classroom": 110}
    assert parse_vlan_config("") == {}
    path = tmp_path / "config"
    path.write_text(VLAN_CONFIG)
    assert read_vlan_config(path) == {"eth0.120": 120, "classroom": 110}
    assert read_vlan_config(tmp_path / "missing") == {}


def test_kernel_table_names_vlan_of_a_freely_named_interface(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(VLAN_CONFIG)
    placement = check_placement(
        profile(vlan=110, subnet="10.10.110.0/24"),
        [Iface("classroom", ("10.10.110.7/24",), up=True)],
        vlan_config=path,
    )
    assert placement.ok and placement.vlan_found == 110


@pytest.mark.parametrize(
    ("name", "vid"),
    [
        ("eth0.120", 120),
        ("enp3s0.120", 120),
        ("eth0.0120", 120),
        ("vlan120", 120),
        ("vlan0005", 5),
        ("eth0", None),
        ("eth0.4095", None),
        ("br-lan", None),
    ],
)
def test_vlan_from_interface_name(name: str, vid: int | None) -> None:
    assert vlan_of(name, {}) == vid


def test_vlan_table_wins_over_name() -> None:
    assert vlan_of("eth0.120", {"eth0.120": 121}) == 121


def test_system_interfaces_reads_this_pc() -> None:
    table = system_interfaces()
    lo = next(i for i in table if i.name == "lo")
    assert lo.up and "127.0.0.1/8" in lo.addresses
