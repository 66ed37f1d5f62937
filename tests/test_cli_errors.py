"""The command line meets bad input: every error of ours is one line and exit 1, every
bad number flag a usage error (exit 2), a file name of another encoding a clear line,
and what a registry or a storage tree says reaches the terminal inert."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import reginsight as ri
from reginsight import _cli
from reginsight.inventory._frames import build
from tests.hostile import HostileServer, registry_ping
from tests.test_analysis import inventory

HOSTILE = "\x1b]0;owned\x07\x1b[2J\u202eevil"  # retitles, clears, reverses the terminal


def _raw(text: str) -> bool:
    """Whether ``text`` still holds a character that would act on a terminal."""
    return any(c in text for c in "\x1b\x07\u202e")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _cli.parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


def test_every_number_flag_checks_its_range():
    """Found, not listed: a number flag added later without a range fails here."""
    checked = []
    for command, parser in _subcommands().items():
        for action in parser._actions:
            if action.type is None or action.type is str:
                continue
            assert action.type not in (int, float), f"{command} {action.option_strings}"
            with pytest.raises(argparse.ArgumentTypeError):
                action.type("not a number")
            with pytest.raises(argparse.ArgumentTypeError):
                action.type("-1")
            checked.append((command, action.option_strings[0]))
    assert ("crawl", "--concurrency") in checked and ("report", "--keep-last") in checked


@pytest.mark.parametrize("argv", [
    ["crawl", "localhost:5000", "-o", "x", "--concurrency", "0"],
    ["crawl", "localhost:5000", "-o", "x", "--concurrency", "-3"],
    ["crawl", "localhost:5000", "-o", "x", "--concurrency", "many"],
    ["crawl", "localhost:5000", "-o", "x", "--concurrency", "2.5"],
    ["crawl", "localhost:5000", "-o", "x", "--concurrency", "100000"],
    ["report", "--concurrency", "0"],
    ["report", "--keep-last", "-1"],
    ["report", "--keep-last", "three"],
    *(["report", "--keep-last", odd] for odd in (" 5", "+3", "1_000", "\u0663", "\uff15")),
])
def test_a_bad_number_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        _cli.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "give a whole number" in err and "Traceback" not in err


def test_the_limits_that_pass_are_taken():
    crawl = _subcommands()["crawl"]
    args = crawl.parse_args(["localhost:5000", "-o", "x", "--concurrency",
                             str(_cli.MAX_CONCURRENCY)])
    assert args.concurrency == _cli.MAX_CONCURRENCY
    assert _subcommands()["report"].parse_args(["--keep-last", "0"]).keep_last == 0


def _damaged(tmp_path: Path, **changes: object) -> Path:
    directory = tmp_path / "inv"
    inventory().save(directory)
    meta = json.loads((directory / "inventory.json").read_text())
    (directory / "inventory.json").write_text(json.dumps({**meta, **changes}))
    return directory


@pytest.mark.parametrize(("changes", "said"), [
    ({"taken_at": [1]}, '"taken_at" must be an ISO timestamp string, got a JSON array'),
    ({"frames": "x"}, '"frames" must be an object'),
    ({"repositories": 5}, '"repositories" must be an array'),
    ({"taken_at": HOSTILE}, "got the string"),
])
def test_a_damaged_inventory_is_one_line_and_exit_1(tmp_path, capsys, changes, said):
    directory = _damaged(tmp_path, **changes)
    assert _cli.main(["report", str(directory), "-o", str(tmp_path / "r.html")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("reginsight: ") and err.count("\n") == 1, err
    assert said in err and not _raw(err)
    assert not (tmp_path / "r.html").exists()


def test_any_error_of_ours_is_one_inert_line(monkeypatch, capsys):
    def failing(args):
        raise ri.ManifestInvalid(f"the registry said {HOSTILE}" + "x" * 5000)

    monkeypatch.setattr(_cli._report, "run", failing)
    assert _cli.main(["report"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("reginsight: the registry said \\x1b]0;owned\\x07")
    assert err.count("\n") == 1 and not _raw(err) and "characters)" in err
    assert len(err) < _cli.MESSAGE_LIMIT + 100


def test_what_an_inventory_holds_is_printed_inert(tmp_path, capsys):
    """The registry URL inventory.json names and the first errors row, shown on stderr."""
    inv = inventory()
    frames = dict(inv.frames())
    frames["errors"] = build("errors", [("a", f"v1{HOSTILE}", "manifest", f"boom {HOSTILE}")])
    hostile = ri.Inventory(registry=f"http://x{HOSTILE}", taken_at=inv.taken_at, **frames)
    hostile.save(tmp_path / "inv")
    assert _cli.main(["report", str(tmp_path / "inv"), "-o", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err
    assert "wrote " in err and "1 read failed" in err and "boom" in err
    assert not _raw(err) and "\\x1b]0;owned\\x07" in err


def _tags_route(status: int, body: dict) -> dict:
    return {"/v2/": registry_ping,
            "/v2/app/tags/list": lambda seen: (status, {"Content-Type": "application/json"},
                                               json.dumps(body).encode())}


@pytest.mark.parametrize("routes", [
    _tags_route(404, {"errors": [{"code": "NAME_UNKNOWN", "message": HOSTILE}]}),
    _tags_route(200, {"name": "app", "tags": ["ok", HOSTILE]}),
], ids=["error-body", "tag-list"])
def test_what_a_registry_says_is_printed_inert(routes, capsys):
    with HostileServer(routes=routes) as server:
        code = _cli.main(["ls", server.url, "app"])
    out, err = capsys.readouterr()
    assert code == 1 and err.startswith("reginsight: ") and not _raw(out + err)


def test_a_catalog_name_is_printed_inert(capsys):
    body = json.dumps({"repositories": ["ok", f"bad{HOSTILE}"]}).encode()
    routes = {"/v2/": registry_ping, "/v2/_catalog": lambda seen: (200, {}, body)}
    with HostileServer(routes=routes) as server:
        assert _cli.main(["ls", server.url]) == 0
    out, err = capsys.readouterr()
    assert out == "ok\n" and "left out" in err and not _raw(err)


# ------------------------------------------------- names that are not UTF-8 (real argv)


def _run(*args: bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """The command with argv bytes as a shell passes them: not UTF-8, they reach
    sys.argv as surrogate escapes."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.run([sys.executable.encode(), b"-m", b"reginsight", *args],
                          capture_output=True, cwd=cwd, env=env, timeout=120)


def test_a_path_that_is_not_utf8_is_one_clear_line_or_works(tmp_path):
    shutil.copytree(Path(ri.__file__).resolve().parent / "sample", tmp_path / "inv")
    os.rename(tmp_path / "inv", os.fsdecode(bytes(tmp_path) + b"/inv\xff"))
    report = _run(b"report", b"inv\xff", b"-o", b"r.html", cwd=tmp_path)
    assert report.returncode == 1 and b"Traceback" not in report.stderr
    assert report.stderr.count(b"\n") == 1 and b"not UTF-8" in report.stderr
    # the crawl refuses its -o before a request (127.0.0.1:1 would be exit 1)
    crawl = _run(b"crawl", b"127.0.0.1:1", b"-o", b"out\xff", cwd=tmp_path)
    assert crawl.returncode == 2 and b"not UTF-8" in crawl.stderr
    assert b"Traceback" not in crawl.stderr and not os.path.lexists(
        bytes(tmp_path) + b"/out\xff")
    # a report file of such a name is only written by Python: that works
    written = _run(b"report", b"-o", b"r\xff.html", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert os.path.isfile(bytes(tmp_path) + b"/r\xff.html")
    assert b"wrote r\\xff.html" in written.stderr


def test_the_frames_of_a_loaded_inventory_are_untouched_by_the_checks(tmp_path):
    """The checks read; what load gives is what was saved (the CLI's report input)."""
    inv = inventory()
    inv.save(tmp_path / "inv")
    loaded = ri.Inventory.load(tmp_path / "inv")
    for (name, a), (_, b) in zip(inv.frames(), loaded.frames(), strict=True):
        pd.testing.assert_frame_equal(a, b, obj=name)
    assert loaded.taken_at == inv.taken_at and loaded.registry == inv.registry
