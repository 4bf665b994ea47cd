"""The example network profiles load; bad VLANs and ladders that break the cap do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.network_profile import NetworkProfileError, load_network_profile_toml

EXAMPLES = Path(__file__).resolve().parents[3] / "hardware_profiles" / "network"


@pytest.mark.parametrize(
    ("file", "vlan", "subnet", "cap"),
    [
        ("city-school.toml", 110, "10.10.110.0/24", 8000),
        ("rural-school.toml", 120, "10.20.120.0/24", 5000),
        ("loopback-demo.toml", None, "127.0.0.0/8", 8000),
    ],
)
def test_example_profiles_load(file: str, vlan: int | None, subnet: str, cap: int) -> None:
    path = EXAMPLES / file
    profile = load_network_profile_toml(path.read_text(encoding="utf-8"), str(path))
    assert (profile.name, profile.vlan_id, profile.subnet) == (path.stem, vlan, subnet)
    assert profile.classroom_cap_kbps == cap
    assert (profile.dscp_audio_value, profile.dscp_video_value) == (46, 34)
    assert profile.ladder[-1].name == "360p"


def test_city_and_rural_ladders() -> None:
    for file, uplink in (("city-school.toml", 100_000), ("rural-school.toml", 10_000)):
        profile = load_network_profile_toml((EXAMPLES / file).read_text(), file)
        assert profile.uplink_kbps == uplink
        assert [(r.name, r.height, r.kbps) for r in profile.ladder] == [
            ("1080p", 1080, 4000),
            ("720p", 720, 2000),
            ("360p", 360, 600),
        ]


BASE = """
name = "bad"
classroom_cap_kbps = 3000
subnet = "10.20.120.0/24"
"""
LADDER = """
[[ladder]]
name = "1080p"
width = 1920
height = 1080
kbps = {top}

[[ladder]]
name = "360p"
width = 640
height = 360
kbps = 600
"""


def test_top_rung_over_the_cap_is_refused() -> None:
    with pytest.raises(NetworkProfileError) as err:
        load_network_profile_toml(BASE + LADDER.format(top=4000), "rural.toml")
    message = str(err.value)
    assert message.startswith("network profile rural.toml:")
    assert "the top rung '1080p' (4000 kbps video + 64 kbps audio)" in message
    assert "exceeds the classroom cap of 3000 kbps; lower the rung or raise the cap" in message


@pytest.mark.parametrize("vlan", [0, 4095, 5000])
def test_vlan_out_of_range_is_refused(vlan: int) -> None:
    text = f"vlan_id = {vlan}\n" + BASE + LADDER.format(top=2000)
    with pytest.raises(NetworkProfileError) as err:
        load_network_profile_toml(text, "school.toml")
    message = str(err.value)
    assert message.startswith("network profile school.toml: vlan_id:")
    assert f"VLAN id {vlan} is outside 1–4094 (0 and 4095 are reserved)" in message
    assert f"(got {vlan})" in message
