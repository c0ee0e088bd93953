"""The files an install writes on the host, where others may have put things first: the script's
folder under `system.tmp_directory` (shared /tmp by default), and the install log in the server's
own folder (the server's code is hostile). Nothing planted there is followed."""

from __future__ import annotations

import os
import stat

import pytest

from wingman.engine.environments.base import ServerUser
from wingman.engine.install.log_file import LOG_NAME, header, last_lines, open_log
from wingman.engine.install.script import InstallSourceError, parse_script, remove_script_folder, write_script_folder
from wingman.engine.install_events import LAST_LINES, LINE_CHARS


def test_the_script_is_written_private_with_lf_line_ends(tmp_path):
    root = tmp_path / "var" / "tmp"  # its parents are made, as Wings makes them
    folder = write_script_folder(root, "u", "echo hi\r\nexit 0\r\n")
    assert (folder / "install.sh").read_bytes() == b"echo hi\nexit 0\n"
    assert stat.S_IMODE(root.stat().st_mode) == stat.S_IMODE(folder.stat().st_mode) == 0o700
    remove_script_folder(root, "u")
    assert not folder.exists()
    remove_script_folder(root, "u")  # nothing there: no error


def test_a_tmp_directory_others_may_write_is_refused(tmp_path):
    root = tmp_path / "tmp"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    with pytest.raises(PermissionError, match="may be written by others"):
        write_script_folder(root, "u", "true")
    assert not (root / "u").exists()


def test_a_link_planted_as_the_servers_script_folder_is_removed_not_followed(tmp_path):
    root, elsewhere = tmp_path / "tmp", tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_script_folder(root, "other", "true")
    (root / "u").symlink_to(elsewhere)
    folder = write_script_folder(root, "u", "true")
    assert not folder.is_symlink() and (folder / "install.sh").is_file()
    assert list(elsewhere.iterdir()) == []


def test_the_log_replaces_a_planted_link_and_is_the_servers_own(tmp_path):
    folder, target = tmp_path / "server", tmp_path / "shadow"
    folder.mkdir()
    target.write_text("secret\n")
    (folder / LOG_NAME).symlink_to(target)
    user = ServerUser(os.getuid() + 1 if os.geteuid() == 0 else os.getuid(), os.getgid())
    with open_log(folder, user) as out:
        out.write(header("u", "img", "sh", {"A": "1"}) + b"output\n")
    log = folder / LOG_NAME
    assert target.read_text() == "secret\n" and not log.is_symlink()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600 and log.stat().st_uid == user.uid
    text = log.read_text()
    assert (
        "Server UUID:          u" in text
        and "  A=1\n" in text
        and text.endswith("| Script Output\n| ------------------------------\noutput\n")
    )


def test_a_folder_planted_as_the_log_is_left_alone(tmp_path):
    folder = tmp_path / "server"
    (folder / LOG_NAME).mkdir(parents=True)
    with pytest.raises(OSError):
        open_log(folder, None)
    assert (folder / LOG_NAME).is_dir()


def test_the_panels_install_document_is_checked():
    script = parse_script({"container_image": " img ", "entrypoint": "bash", "script": None})
    assert (script.image, script.entrypoint, script.script) == ("img", "bash", "")
    for bad, words in [
        ([], "not an object"),
        ({"entrypoint": "sh"}, "no `container_image`"),
        ({"container_image": "i", "entrypoint": "a\0b"}, "not a name"),
        ({"container_image": "i", "entrypoint": "sh", "script": 5}, "not text"),
    ]:
        with pytest.raises(InstallSourceError, match=words):
            parse_script(bad)


def test_an_outcome_keeps_few_lines_each_cut():
    kept = last_lines([str(i) for i in range(100)] + ["x" * 10_000])
    assert len(kept) == LAST_LINES and kept[-2] == "99"
    assert len(kept[-1]) == LINE_CHARS and kept[-1].endswith("…")
