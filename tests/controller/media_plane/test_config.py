"""The media plane's configuration: the sample loads, and every mistake is refused with
an error naming the file and the setting."""

from __future__ import annotations

import pathlib

import pytest

from controller.media_plane.config import load_config
from controller.media_plane.exceptions import ConfigError

pytestmark = pytest.mark.timeout(30)

SAMPLE = pathlib.Path(__file__).resolve().parents[3] / "controller/media_plane/sample.toml"

GOOD_A = """
[janus.county-a]
api_url = "http://10.0.0.5:8088/janus"
admin_url = "http://10.0.0.5:7088/admin"
admin_secret = "secret-of-a"
capacity = 8
"""


def test_the_sample_loads() -> None:
    cfg = load_config(SAMPLE)
    assert cfg.backend == "janus" and not cfg.fallback_to_builtin
    assert [i.name for i in cfg.instances] == ["county-a", "county-b"]
    assert cfg.instance("county-a").capacity == 12
    assert cfg.watch.down_within_s == 8.0
    # The secret stays out of logs that print the object.
    assert "change-me" not in repr(cfg)


def test_no_file_content_means_builtin(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text("")
    cfg = load_config(path)
    assert cfg.backend == "builtin" and cfg.instances == ()


BAD = [
    ('[media_plane]\nbackend = "jaunus"\n' + GOOD_A, "[media_plane] backend", "jaunus"),
    ('[media_plane]\nbackend = "janus"\n', "[media_plane] backend", "no [janus.NAME]"),
    ("[media_plane]\nfallback_to_builtin = 1\n", "[media_plane] fallback_to_builtin", "true"),
    ("[media_plane]\npoll_interval_s = 0\n", "[media_plane] poll_interval_s", "0.2 to 60"),
    ("[media_plane]\ndown_after_failures = 2.5\n", "[media_plane] down_after_failures", "whole"),
    ("[media_plane]\nbakend = 'janus'\n", "[media_plane] bakend", "unknown setting"),
    ("[janos.a]\n", "janos", "unknown setting"),
    (GOOD_A.replace("capacity = 8", "capacity = 0"), "[janus.county-a] capacity", "1 to 10000"),
    (GOOD_A.replace("capacity = 8", 'capacity = "8"'), "[janus.county-a] capacity", "whole"),
    (GOOD_A.replace("capacity = 8", ""), "[janus.county-a] capacity", "missing"),
    (GOOD_A.replace("capacity", "capcity"), "[janus.county-a] capcity", "unknown setting"),
    (GOOD_A.replace("http://10.0.0.5:8088", "ftp://10.0.0.5"), "[janus.county-a] api_url", "ftp"),
    (GOOD_A.replace("10.0.0.5:8088", "10.0.0.5:99999"), "[janus.county-a] api_url", "not a URL"),
    (
        GOOD_A.replace('api_url = "http://10.0.0.5:8088/janus"', ""),
        "[janus.county-a] api_url",
        "missing",
    ),
    (
        GOOD_A.replace("7088/admin", "8088/janus"),
        "[janus.county-a] admin_url",
        "same as api_url",
    ),
    (GOOD_A.replace("secret-of-a", "short"), "[janus.county-a] admin_secret", "8 to 256"),
    (GOOD_A.replace("janus.county-a", 'janus."County A"'), "[janus.County A]", "lower-case"),
    (GOOD_A + GOOD_A, "file", "not valid TOML"),
    (
        GOOD_A + GOOD_A.replace("county-a", "county-b").replace("7088/admin", "7089/admin"),
        "[janus.county-b] api_url",
        "already [janus.county-a] api_url",
    ),
]


@pytest.mark.parametrize(("text", "setting", "says"), BAD)
def test_a_mistake_names_its_setting(
    tmp_path: pathlib.Path, text: str, setting: str, says: str
) -> None:
    path = tmp_path / "media.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.setting == setting
    assert str(caught.value).startswith(f"{path}: {setting}: ")
    assert says in str(caught.value)
    assert "secret-of-a" not in str(caught.value)


def test_a_missing_file_says_so(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="file: cannot be read"):
        load_config(tmp_path / "nowhere.toml")
