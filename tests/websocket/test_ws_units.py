"""The websocket's small parts on their own: frames, Origins, token buckets, the token checker's
order of refusals, and the config keys (the default template reads back as the defaults; bad
values are refused with the key named)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.daemon import TOKEN
from tests.support.websocket import token
from wingman.api.cli.defaults import write_default_config
from wingman.api.websocket import frames
from wingman.api.websocket.limits import InboundLimiter, SocketCount, TokenBucket
from wingman.api.websocket.origin import normalize, origin_allowed
from wingman.api.websocket.tokens import DENYLISTED, EXPIRED, JwtRefused, TokenChecker
from wingman.engine.config import ConfigError, DaemonConfig, Rate, load_config, parse_config
from wingman.engine.servers.definition import RestartPolicy, parse_definition

# The tests' node token is shorter than PyJWT recommends (the daemon silences this in its process).
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

UUID = "0b8e1f7c-1d9e-4f7a-9a51-3c2a1b0d9e11"


def test_frames_leave_out_empty_args_and_carry_strings():
    assert frames.encode("auth success") == '{"event":"auth success"}'
    assert frames.encode("status", "running") == '{"event":"status","args":["running"]}'
    assert frames.decode('{"event":"set state","args":["start"]}') == ("set state", ["start"])
    assert frames.decode('{"event":"send stats"}') == ("send stats", [])
    for bad in ("", "[]", '{"event":"x","args":"y"}', '{"event":"x","args":[{}]}', b"\xff{}"):
        with pytest.raises(frames.BadFrame):
            frames.decode(bad)


def test_a_shared_frame_is_encoded_once_per_object():
    calls = []
    shared = frames.SharedFrame(lambda doc: calls.append(doc) or frames.encode_json("stats", doc))
    doc = {"a": 1}
    assert shared(doc) == shared(doc) and len(calls) == 1
    assert shared({"a": 1}) == frames.encode_json("stats", doc) and len(calls) == 2  # another object: encoded again


@pytest.mark.parametrize(
    "origin,ok",
    [
        (None, True),
        ("https://panel.example.com", True),
        ("https://PANEL.example.com:443", True),
        ("http://panel.example.com", False),
        ("https://panel.example.com:8443", False),
        ("https://admin.example.org:8443", True),
        ("null", False),
        ("https://evil.example", False),
        ("garbage", False),
    ],
)
def test_origins_are_compared_as_origins(origin, ok):
    assert origin_allowed(origin, "https://panel.example.com/some/path/", ["https://admin.example.org:8443"]) is ok


def test_a_star_allows_any_origin_and_ipv6_literals_normalize():
    assert origin_allowed("https://anything.example", None, ["*"])
    assert normalize("http://[::1]:80") == "http://[::1]"


def test_token_buckets_refill_on_their_clock():
    now = [0.0]
    bucket = TokenBucket(Rate(burst=2, every=1), clock=lambda: now[0])
    assert [bucket.allow() for _ in range(3)] == [True, True, False]
    now[0] += 1.0
    assert bucket.allow() and not bucket.allow()


def test_the_global_bucket_is_drawn_first():
    now = [0.0]
    limiter = InboundLimiter(
        {"global": Rate(burst=3, every=10), "send stats": Rate(burst=1, every=10)}, clock=lambda: now[0]
    )
    assert [limiter.refuse("send stats") for _ in range(2)] == [None, "send stats"]
    assert limiter.refuse("anything") is None
    assert limiter.refuse("anything") == "global"


def test_socket_counts_are_given_back():
    count = SocketCount(1)
    assert count.take(UUID) and not count.take(UUID)
    count.release(UUID)
    assert count.take(UUID) and count.open(UUID) == 1


def test_the_checker_refuses_in_wings_order_and_rechecks_admitted_tokens():
    denied: dict[str, float] = {}
    started = time.time()
    checker = TokenChecker(TOKEN, started, denied.get)
    t = checker.admit(token(UUID, jti="j", expires_in=100, permissions=["websocket.connect"]), UUID)
    assert t.user and t.allows("websocket.connect") and not t.allows("control.start")
    assert checker.problem(t) is None
    assert checker.problem(t, now=time.time() + 200) == EXPIRED
    denied["j"] = time.time() + 0.5
    assert checker.problem(t) == DENYLISTED
    with pytest.raises(JwtRefused, match="exp claim"):  # expiry is looked at before the uuid
        checker.admit(token("another", expires_in=-1), UUID)


def test_the_default_config_template_reads_back_as_the_defaults(tmp_path: Path):
    write_default_config(tmp_path / "wingman.yml")
    cfg = load_config(tmp_path / "wingman.yml")
    defaults = DaemonConfig(token="x" * 16)
    assert cfg.websocket == defaults.websocket
    assert cfg.utilization == defaults.utilization
    assert cfg.event_stream == defaults.event_stream
    assert cfg.system.crash_detection == defaults.system.crash_detection
    assert cfg.system.boot_concurrency == defaults.system.boot_concurrency
    assert cfg.audit == defaults.audit
    demo = parse_definition(cfg.servers[0])
    assert demo.restart_policy == RestartPolicy()  # the template shows the policy's own defaults


@pytest.mark.parametrize(
    "raw,key",
    [
        ({"websocket": {"rate_limits": {"dance": {"burst": 1, "every": 1}}}}, "websocket.rate_limits"),
        ({"websocket": {"queue_frames": 1}}, "websocket.queue_frames"),
        ({"websocket": {"typo": 1}}, "websocket.typo"),
        ({"utilization": {"interval_seconds": 0}}, "utilization.interval_seconds"),
        ({"event_stream": {"heartbeat_seconds": -1}}, "event_stream.heartbeat_seconds"),
    ],
)
def test_bad_live_settings_are_refused_naming_the_key(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config({"token": TOKEN, **raw})


def test_rate_limits_given_in_part_keep_the_other_defaults():
    cfg = parse_config({"token": TOKEN, "websocket": {"rate_limits": {"auth": {"burst": 9, "every": 1}}}})
    assert cfg.websocket.rate_limits["auth"].burst == 9
    assert cfg.websocket.rate_limits["send stats"] == DaemonConfig(token=TOKEN).websocket.rate_limits["send stats"]
