"""Done-line matching (Wings' `startup.done`) and the bounded console buffer."""

from hypothesis import given
from hypothesis import strategies as st

from wingman.engine.console.buffer import ConsoleBuffer
from wingman.engine.console.readiness import DoneMatcher


def test_substring_and_regex_done_lines():
    m = DoneMatcher(["Server started", r"regex:^Done \(\d+\.\d+s\)!"])
    assert m.matches("[12:00] Server started on port 25565")
    assert m.matches("Done (3.21s)! For help, type help")
    assert not m.matches("Done loading")
    assert not m.matches("server STARTED")  # substrings are case-sensitive, as in Wings


def test_strip_ansi_before_matching():
    line = "\x1b[32mServer\x1b[0m started"
    assert not DoneMatcher(["Server started"]).matches(line)
    assert DoneMatcher(["Server started"], strip_ansi=True).matches(line)


def test_no_done_lines_means_ready_at_once():
    assert DoneMatcher([]).empty and DoneMatcher([""]).empty


@given(st.lists(st.text(max_size=20), max_size=300), st.integers(min_value=1, max_value=50))
def test_buffer_keeps_the_last_lines_in_order(lines, size):
    buf = ConsoleBuffer(max_lines=size)
    seen = []
    buf.listen(lambda kind, text: seen.append((kind, text)))
    for line in lines:
        buf.push(line)
    buf.note("a daemon note")
    assert list(buf.lines) == lines[-size:]
    assert buf.tail(5) == lines[-size:][-5:]
    assert seen == [("output", line) for line in lines] + [("daemon", "a daemon note")]
