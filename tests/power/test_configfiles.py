"""Pre-boot step 5 against real files: every parser, placeholders, creation, failures, safety."""

from __future__ import annotations

import json
import os
import stat

import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from wingman.engine.preboot.configfiles import ConfigFileResult, apply_config_files

SETTINGS = {
    "uuid": "0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11",
    "build": {"memory_limit": 1024, "swap": 0, "io_weight": 500, "cpu_limit": 200, "disk_space": 0},
    "allocations": {"default": {"ip": "0.0.0.0", "port": 25565}},
    "container": {"image": "local/busybox:test"},
}
ENV = {"MOTD": "hello", "MAX_PLAYERS": "20", "SERVER_PORT": "1"}
DAEMON = {"token": "s3cret", "docker": {"network": {"interface": "172.18.0.1"}}, "api": {"port": 8080}}


def apply(folder, *configs, settings=SETTINGS, env=ENV, daemon=DAEMON) -> list[ConfigFileResult]:
    return apply_config_files(folder, list(configs), settings, env, daemon)


def entry(file, parser, **replace):
    return {"file": file, "parser": parser, "replace": [{"match": k, "replace_with": v} for k, v in replace.items()]}


# --- properties -----------------------------------------------------------------------------

PROPS = """#Minecraft server properties
#Mon Jan 01 00:00:00 UTC 2024

server-ip=
# the port players connect to
server-port=25565
motd=A Minecraft Server
max-players = 10
"""


def test_properties_replaces_values_and_keeps_comments_and_order(tmp_path):
    (tmp_path / "server.properties").write_text(PROPS)
    [r] = apply(
        tmp_path,
        {
            "file": "server.properties",
            "parser": "properties",
            "replace": [
                {"match": "server-port", "replace_with": "{{server.build.default.port}}"},
                {"match": "server-ip", "replace_with": "0.0.0.0"},
                {"match": "motd", "replace_with": "{{env.MOTD}} §a wörld"},
                {"match": "max-players", "replace_with": 42},
                {"match": "enable-query", "replace_with": True},
            ],
        },
    )
    assert r == ConfigFileResult("server.properties", ok=True, changed=True)
    assert (tmp_path / "server.properties").read_text() == (
        "#Minecraft server properties\n#Mon Jan 01 00:00:00 UTC 2024\n\n"
        "server-ip=0.0.0.0\n# the port players connect to\nserver-port=25565\n"
        "motd=hello \\u00a7a w\\u00f6rld\n"  # escaped on purpose, as Wings does
        "max-players = 42\nenable-query=true\n"
    )


def test_properties_if_value_and_continuation_lines(tmp_path):
    (tmp_path / "a.properties").write_text("level-name=world\nlong = one \\\n    two\nip=127.0.0.1\n")
    apply(
        tmp_path,
        {
            "file": "a.properties",
            "parser": "properties",
            "replace": [
                {"match": "ip", "if_value": "127.0.0.1", "replace_with": "0.0.0.0"},
                {"match": "level-name", "if_value": "other", "replace_with": "nope"},
                {"match": "absent", "if_value": "x", "replace_with": "nope"},
                {"match": "long", "replace_with": "short"},
            ],
        },
    )
    assert (tmp_path / "a.properties").read_text() == "level-name=world\nlong = short\nip=0.0.0.0\n"


def test_properties_malformed_escape_reports_the_line(tmp_path):
    (tmp_path / "server.properties").write_text("a=1\nb=2\nc=\\uZZ\n")
    [r] = apply(tmp_path, entry("server.properties", "properties", a="9"))
    assert not r.ok and r.error == "server.properties: line 3: malformed \\uXXXX escape"
    assert (tmp_path / "server.properties").read_text() == "a=1\nb=2\nc=\\uZZ\n"


# --- yaml / json ------------------------------------------------------------------------------


def test_yaml_paths_types_and_other_keys_kept(tmp_path):
    (tmp_path / "config.yml").write_text(
        "listeners:\n- host: 0.0.0.0:25577\n  motd: old\n- host: 0.0.0.0:25578\n"
        "settings:\n  bungeecord: false\n  name: x\nother: [1, 2]\n"
    )
    [r] = apply(
        tmp_path,
        {
            "file": "config.yml",
            "parser": "yaml",
            "replace": [
                {"match": "listeners[0].host", "replace_with": "0.0.0.0:{{server.build.default.port}}"},
                {"match": "listeners.*.motd", "replace_with": "{{env.MOTD}}"},
                {"match": "settings.bungeecord", "replace_with": True},
                {"match": "settings.port", "replace_with": "{{server.build.default.port}}"},
                {"match": "new.nested.key", "replace_with": "{{env.MAX_PLAYERS}}"},
            ],
        },
    )
    assert r.ok and r.changed, r
    assert yaml.safe_load((tmp_path / "config.yml").read_text()) == {
        "listeners": [{"host": "0.0.0.0:25565", "motd": "hello"}, {"host": "0.0.0.0:25578", "motd": "hello"}],
        "settings": {"bungeecord": True, "name": "x", "port": 25565},  # Atoi'd into an int, as Wings
        "other": [1, 2],
        "new": {"nested": {"key": 20}},
    }


def test_json_types_follow_wings(tmp_path):
    (tmp_path / "cfg.json").write_text(json.dumps({"a": {"b": "x"}, "keep": [1, {"z": None}], "ip": "127.0.0.1"}))
    apply(
        tmp_path,
        {
            "file": "cfg.json",
            "parser": "json",
            "replace": [
                {"match": "a.b", "replace_with": "{{server.build.memory}}"},  # legacy name → memory_limit
                {"match": "a.flag", "replace_with": False},
                {"match": "a.ratio", "replace_with": 0.5},
                {"match": "a.text", "replace_with": "007x"},
                {"match": "a.signed", "replace_with": "-12"},
                {"match": "keep.1.z", "replace_with": "set"},
                {"match": "ip", "if_value": "regex:^127\\.0\\.0\\.(\\d+)$", "replace_with": "10.0.0.$1"},
            ],
        },
    )
    data = json.loads((tmp_path / "cfg.json").read_text())
    assert data == {
        "a": {"b": 1024, "flag": False, "ratio": 0.5, "text": "007x", "signed": -12},
        "keep": [1, {"z": "set"}],
        "ip": "10.0.0.1",
    }
    assert (tmp_path / "cfg.json").read_text().startswith('{\n    "a"')  # Wings' 4-space indent


def test_json_path_through_a_scalar_fails_only_that_file(tmp_path):
    (tmp_path / "cfg.json").write_text('{"a": "scalar"}')
    [r] = apply(tmp_path, entry("cfg.json", "json", **{"a.b": 1}))
    assert not r.ok and "cannot set a.b" in r.error
    assert (tmp_path / "cfg.json").read_text() == '{"a": "scalar"}'


def test_json_wildcard_over_an_object_and_an_unusable_regex(tmp_path):
    (tmp_path / "velocity.json").write_text(
        '{"servers": {"lobby": {"address": "x"}, "pvp": {"address": "y"}, "try": ["lobby"]}}'
    )
    [r] = apply(
        tmp_path,
        {
            "file": "velocity.json",
            "parser": "json",
            "replace": [
                {"match": "servers.*.address", "replace_with": "127.0.0.1:{{server.build.default.port}}"},
                {"match": "servers.try", "if_value": "regex:(", "replace_with": "x"},
            ],
        },
    )
    assert r.ok and r.warnings and "if_value regex is unusable" in r.warnings[0]
    assert json.loads((tmp_path / "velocity.json").read_text())["servers"] == {
        "lobby": {"address": "127.0.0.1:25565"},
        "pvp": {"address": "127.0.0.1:25565"},
        "try": ["lobby"],
    }


# --- ini / file ------------------------------------------------------------------------------


def test_ini_sections_default_keys_and_new_sections(tmp_path):
    (tmp_path / "game.ini").write_text(
        'top = 1\n\n; comment kept\n[Server]\nPort=7777\nName = "My server"  \n\n[Other.Sub]\nx: 1\n'
    )
    [r] = apply(
        tmp_path,
        {
            "file": "game.ini",
            "parser": "ini",
            "replace": [
                {"match": "Server.Port", "replace_with": "{{server.build.default.port}}"},
                {"match": "Server.MaxPlayers", "replace_with": "{{env.MAX_PLAYERS}}"},
                {"match": "top", "replace_with": "2"},
                {"match": "[Other.Sub].x", "replace_with": "3"},
                {"match": "New.a.b", "replace_with": "yes"},
            ],
        },
    )
    assert r.ok and r.changed
    assert (tmp_path / "game.ini").read_text() == (
        'top = 2\n\n; comment kept\n[Server]\nPort=25565\nName = "My server"  \nMaxPlayers = 20\n\n'
        "[Other.Sub]\nx: 3\n\n[New]\na.b = yes\n"
    )


def test_file_parser_replaces_whole_lines_by_prefix(tmp_path):
    (tmp_path / "start.cfg").write_bytes(b"hostname old\r\nport 1\r\nkeep me\r\nport2 x")
    apply(
        tmp_path,
        {
            "file": "start.cfg",
            "parser": "file",
            "replace": [
                {"match": "hostname", "replace_with": "hostname {{env.MOTD}}"},
                {"match": "port", "replace_with": "port {{server.build.default.port}}"},
            ],
        },
    )
    assert (tmp_path / "start.cfg").read_bytes() == b"hostname hello\r\nport 25565\r\nkeep me\r\nport 25565"


# --- missing files ----------------------------------------------------------------------------


def test_missing_files_are_created_except_for_the_file_parser(tmp_path):
    results = apply(
        tmp_path,
        entry("server.properties", "properties", **{"server-port": "{{server.build.default.port}}"}),
        entry("plugins/x/config.yml", "yaml", **{"a.b": "c"}),
        entry("data/settings.json", "json", port="{{server.build.default.port}}"),
        entry("game.ini", "ini", **{"Server.Port": 1}),
        entry("text.cfg", "file", port="port 1"),
    )
    assert [r.ok and r.changed for r in results] == [True, True, True, True, False]
    assert (tmp_path / "server.properties").read_text() == "server-port=25565\n"
    assert yaml.safe_load((tmp_path / "plugins/x/config.yml").read_text()) == {"a": {"b": "c"}}
    assert json.loads((tmp_path / "data/settings.json").read_text()) == {"port": 25565}
    assert (tmp_path / "game.ini").read_text() == "[Server]\nPort = 1\n"
    assert not (tmp_path / "text.cfg").exists()


# --- placeholders -----------------------------------------------------------------------------


def test_placeholders_resolve_like_panel_and_wings(tmp_path):
    [r] = apply(
        tmp_path,
        {
            "file": "p.properties",
            "parser": "properties",
            "replace": [
                {"match": "mem", "replace_with": "{{server.build.memory}}M/{{server.build.memory_limit}}"},
                {"match": "cpu", "replace_with": "{{server.build.cpu}}"},
                {"match": "uuid", "replace_with": "{{server.uuid}}"},
                {"match": "port", "replace_with": "{{env.SERVER_PORT}}"},  # legacy → the allocation port
                {"match": "iface", "replace_with": "{{config.docker.interface}}"},
                {"match": "api", "replace_with": "{{ config.api.port }}"},
                {"match": "tok", "replace_with": "[{{config.token}}]"},
                {"match": "unknown", "replace_with": "a{{server.build.nope}}b{{env.NOPE}}c"},
                {"match": "game", "replace_with": "{{player.name}}"},
            ],
        },
    )
    assert r.ok
    assert (tmp_path / "p.properties").read_text() == (
        "mem=1024M/1024\ncpu=200\nuuid=0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11\nport=25565\n"
        "iface=172.18.0.1\napi=8080\ntok=[]\nunknown=abc\ngame={{player.name}}\n"
    )
    assert r.warnings == [
        "{{config.token}} is not exposed to server files; wrote ''",
        "unknown placeholder {{server.build.nope}} replaced with ''",
        "unknown placeholder {{env.NOPE}} replaced with ''",
    ]


def test_legacy_value_key_and_if_value_in_yaml(tmp_path):
    (tmp_path / "c.yml").write_text("ip: 127.0.0.1\nother: 1.2.3.4\n")
    apply(
        tmp_path,
        {
            "file": "c.yml",
            "parser": "yml",
            "replace": [
                {"match": "ip", "if_value": "127.0.0.1", "value": "0.0.0.0"},
                {"match": "other", "if_value": "127.0.0.1", "value": "0.0.0.0"},
                {"match": "missing", "if_value": "127.0.0.1", "value": "0.0.0.0"},
            ],
        },
    )
    assert yaml.safe_load((tmp_path / "c.yml").read_text()) == {"ip": "0.0.0.0", "other": "1.2.3.4"}


# --- failures and safety ---------------------------------------------------------------------


def test_a_broken_file_is_reported_and_the_others_still_apply(tmp_path):
    (tmp_path / "broken.json").write_text('{\n  "a": 1,\n  "b": \n}')
    (tmp_path / "broken.yml").write_text("a: [1,\n")
    (tmp_path / "server.properties").write_text("server-port=1\n")
    results = apply(
        tmp_path,
        entry("broken.json", "json", a=2),
        entry("broken.yml", "yaml", a=2),
        {"file": "x.conf", "parser": "toml", "replace": []},
        {"file": "y.conf", "parser": "file", "replace": [{"replace_with": "x"}]},
        entry("server.properties", "properties", **{"server-port": 2}),
    )
    assert [r.ok for r in results] == [False, False, False, False, True]
    assert results[0].error == "broken.json: line 4: Expecting value"
    assert results[1].error.startswith("broken.yml: line ")
    assert "parser 'toml' is not supported" in results[2].error
    assert "needs a non-empty string 'match'" in results[3].error
    assert (tmp_path / "broken.json").read_text() == '{\n  "a": 1,\n  "b": \n}'
    assert (tmp_path / "server.properties").read_text() == "server-port=2\n"
    assert not (tmp_path / "x.conf").exists() and not (tmp_path / "y.conf").exists()


@pytest.mark.parametrize(
    "name",
    [
        "../outside.properties",
        "a/../../outside.properties",
        "/tmp/outside.properties",
        "link/outside.properties",
        "filelink",
    ],
)
def test_paths_leaving_the_folder_are_refused(tmp_path, name):
    folder, outside = tmp_path / "server", tmp_path / "elsewhere"
    folder.mkdir()
    outside.mkdir()
    (outside / "outside.properties").write_text("a=1\n")
    (folder / "link").symlink_to(outside)
    (folder / "filelink").symlink_to(outside / "outside.properties")
    [r] = apply(folder, entry(name, "properties", a="pwned"))
    assert not r.ok and ("outside the server folder" in r.error or "absolute paths" in r.error), r
    assert (outside / "outside.properties").read_text() == "a=1\n"
    assert not (tmp_path / "outside.properties").exists()


def test_symlinks_inside_the_folder_are_followed_and_kept(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "server.properties").write_text("a=1\n")
    (tmp_path / "server.properties").symlink_to("real/server.properties")
    [r] = apply(tmp_path, entry("server.properties", "properties", a="2"))
    assert r.ok and (tmp_path / "server.properties").is_symlink()
    assert (tmp_path / "real" / "server.properties").read_text() == "a=2\n"


def test_writes_are_atomic_and_keep_the_mode(tmp_path):
    path = tmp_path / "server.properties"
    path.write_text("a=1\n")
    path.chmod(0o600)
    inode = path.stat().st_ino
    apply(tmp_path, entry("server.properties", "properties", a="2"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_ino != inode
    assert os.listdir(tmp_path) == ["server.properties"]  # no temp file left behind


def test_a_directory_in_place_of_the_file_is_reported(tmp_path):
    (tmp_path / "server.properties").mkdir()
    [r] = apply(tmp_path, entry("server.properties", "properties", a="2"))
    assert r.error == "server.properties: is not a regular file"


def test_a_fifo_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "server.properties")
    [r] = apply(tmp_path, entry("server.properties", "properties", a="2"))
    assert r.error == "server.properties: is not a regular file"


# --- idempotence ------------------------------------------------------------------------------


def test_applying_twice_gives_the_same_content_and_no_change(tmp_path):
    (tmp_path / "server.properties").write_text(PROPS)
    (tmp_path / "c.yml").write_text("# comment\na:\n  b: 1\n")
    (tmp_path / "c.json").write_text('{"a": {"b": 1}}')
    (tmp_path / "c.ini").write_text("[s]\nk=v\n")
    (tmp_path / "c.txt").write_text("port 1\n")
    configs = [
        entry("server.properties", "properties", motd="§ {{env.MOTD}}", **{"server-port": 1, "new": "x y"}),
        entry("c.yml", "yaml", **{"a.b": "{{server.build.default.port}}", "a.c": True}),
        entry("c.json", "json", **{"a.b": "2", "x.y": 0.5}),
        entry("c.ini", "ini", **{"s.k": "w", "t.u": "1"}),
        entry("c.txt", "file", port="port {{server.build.default.port}}"),
        entry("new.json", "json", a=1),
    ]
    first = apply(tmp_path, *configs)
    snapshot = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    second = apply(tmp_path, *configs)
    assert all(r.ok and r.changed for r in first)
    assert [r.changed for r in second] == [False] * len(configs)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == snapshot


# --- property: a properties rewrite touches only the replaced key ----------------------------

_key = st.text(st.characters(whitelist_categories=("L", "N"), max_codepoint=0x2FF), min_size=1, max_size=8)
_value = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
# Unrelated lines hold no backslash: one could be a malformed escape (`\u` with no four hex
# digits), which makes the whole file unreadable, rightly; escapes are exercised through `value`.
_plain = st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters="\\")
_other = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", _key, st.text(_plain, max_size=10)),
    st.builds(lambda c: f"# {c}", st.text(_plain, max_size=10)),
    st.just(""),
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.lists(_other, max_size=6), after=st.lists(_other, max_size=6), value=_value)
def test_properties_rewrite_keeps_unrelated_lines(tmp_path, before, after, value):
    def unrelated(lines):
        return [line for line in lines if not line.startswith("target=")]

    before, after = unrelated(before), unrelated(after)
    path = tmp_path / "p.properties"
    path.write_text("\n".join([*before, "target=old", *after]) + "\n")
    [r] = apply(tmp_path, entry("p.properties", "properties", target=value))
    assert r.ok, r
    lines = path.read_text().split("\n")
    assert lines[: len(before)] == before and lines[len(before) + 1 : -1] == after
    # reading the line back (as the game would) gives exactly the value we set
    [r2] = apply(
        tmp_path,
        {
            "file": "p.properties",
            "parser": "properties",
            "replace": [{"match": "target", "if_value": value, "replace_with": "seen"}],
        },
    )
    assert path.read_text().split("\n")[len(before)] == "target=seen"
