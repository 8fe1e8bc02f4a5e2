"""Issue 13, faults: the report survives a writer killed mid-write and a full disk; a
read-only results folder can be listed and reported elsewhere; file-system errors are one
line with status 2; odd stored rows are skipped and named, never a traceback.

Each test starts from a copy of one small results folder (a quick gd-rate sweep and its
report). Disk-full and read-only mounts use a small tmpfs, which needs root; elsewhere the
disk-full test is skipped and the read-only one uses chmod."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from saddlescape.cli import main
from saddlescape.runner import Store, load_runs

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import TINY_GD_RATE, TINY_RUN

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _report_files(folder: Path) -> dict[str, bytes]:
    """The report's files (not the temporary ones a killed writer leaves)."""
    files = _files(folder).items()
    return {k: v for k, v in files if k.endswith((".html", ".png")) and not k.startswith(".")}


@contextlib.contextmanager
def _tmpfs(where: Path, size: str = "2m"):
    """A small tmpfs mounted at ``where`` (root only), unmounted afterwards."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder: Path, leave: int) -> None:
    """Fill the file system holding ``folder`` up, then free ``leave`` bytes."""
    filler = folder / "filler"
    with open(filler, "wb") as fh:
        chunk = b"\0" * 65536
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError:
            pass
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))


# -------------------------------------------------------------------- 1. atomic report
@pytest.mark.parametrize("fault", ["killed", "refused"])
def test_report_cut_off_mid_write_keeps_the_previous_report(good_results, tmp_path, fault):
    """A file-size limit between the PNG's and the page's sizes stops ``report`` in the
    middle of writing the page: by a real signal (SIGXFSZ, its default action kills the
    process) or, with the signal ignored as Python does by default, by the write failing
    (EFBIG, like a full disk). Either way every previous report file is still whole, and
    the next report removes the dead writer's temporary files."""
    out = _copy(good_results, tmp_path / "res")
    before = _report_files(out)
    # below the page, above every PNG and SQLite's 32 KiB shared-memory index
    smaller = max([32768, *(len(v) for k, v in before.items() if k.endswith(".png"))])
    assert smaller < len(before["index.html"])
    limit = (smaller + len(before["index.html"])) // 2
    code = textwrap.dedent(
        """
        import resource, signal, sys
        import matplotlib.pyplot, saddlescape.plotting, saddlescape.report  # caches first
        from saddlescape.cli import main
        if sys.argv[2] == "killed":
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        limit = int(sys.argv[3])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        sys.exit(main(["report", "--out", sys.argv[1]]))
        """
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out), fault, str(limit)],
        capture_output=True,
        text=True,
        env=env,
    )
    if fault == "killed":
        assert proc.returncode == -signal.SIGXFSZ, proc.stderr[-2000:]
    else:
        assert proc.returncode == 2, proc.stderr[-2000:]
        line = _one_line_error(proc.stderr)
        assert "File too large" in line and "previous report files were kept" in line
    assert _report_files(out) == before  # nothing cut short, nothing replaced
    if fault == "killed":
        assert [p.name for p in out.iterdir() if ".tmp" in p.name]  # the dead writer's
    assert main(["report", "--out", str(out)]) == 0
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]
    assert (out / "index.html").read_text(encoding="utf-8").rstrip().endswith("</html>")


# ------------------------------------------------------------------------ 2. disk full
@pytest.mark.skipif(not IS_ROOT, reason="a small tmpfs to fill needs root (mount)")
@pytest.mark.parametrize("leave", [0, 40_000], ids=["completely-full", "room-for-a-png"])
def test_report_on_a_full_disk_says_so_and_keeps_the_previous_files(
    good_results, tmp_path, capsys, leave
):
    with _tmpfs(tmp_path / "disk") as disk:
        out = _copy(good_results, disk / "res")
        before = _files(out)
        _fill(disk, leave)
        rc, _, err = _run(capsys, "report", "--out", out)
        line = _one_line_error(err)
        assert rc == 2
        assert "no space left" in line and "is full" in line and "kept" in line
        assert "not a readable SQLite database" not in line
        assert _files(out) == before  # the store and every report file as they were


# ------------------------------------------------------------------ 4. read-only folder
@contextlib.contextmanager
def _read_only_copy(good_results: Path, tmp_path: Path):
    """A copy of the results in a folder this process cannot write: a read-only tmpfs as
    root (chmod does not stop root), else a chmod'ed folder."""
    if IS_ROOT:
        with _tmpfs(tmp_path / "ro") as mount:
            out = _copy(good_results, mount / "res")
            done = subprocess.run(
                ["mount", "-o", "remount,ro", str(mount)], capture_output=True, text=True
            )
            if done.returncode != 0:
                pytest.skip(f"cannot remount the tmpfs read-only: {done.stderr.strip()}")
            yield out
    else:
        out = _copy(good_results, tmp_path / "res")
        for p in out.iterdir():
            p.chmod(0o444)
        out.chmod(0o555)
        try:
            yield out
        finally:
            out.chmod(0o755)


def test_a_read_only_results_folder_is_listed_and_reported_elsewhere(
    good_results, tmp_path, capsys
):
    with _read_only_copy(good_results, tmp_path) as out:
        before = _files(out)
        rc, text, err = _run(capsys, "runs", "--out", out)
        assert rc == 0 and "1 runs in" in text, err
        assert len(load_runs(out)) == 1

        rc, _, err = _run(capsys, "report", "--out", out)
        line = _one_line_error(err)
        assert rc == 2 and "--to" in line and str(out) in line
        assert "read-only" in line or "permission denied" in line

        elsewhere = tmp_path / "elsewhere"
        rc, text, err = _run(capsys, "report", "--out", out, "--to", elsewhere)
        assert rc == 0, err
        assert (elsewhere / "index.html").stat().st_size > 10_000
        assert "✓ gd-rate" in text

        rc, _, err = _run(capsys, "run", "gd-rate", *TINY_RUN, "--quick", "--out", out)
        line = _one_line_error(err)
        assert rc == 2 and ("read-only" in line or "permission denied" in line)
        assert _files(out) == before


def test_a_sweep_into_a_read_only_results_folder_names_the_folder_not_a_broken_database(
    tmp_path, capsys
):
    """A store written by ``run`` and then found on a read-only mount (or without write
    permission) was refused as 'not a readable SQLite database (unable to open database
    file)': the results read as lost although they were intact."""
    fresh = tmp_path / "fresh"
    rc, _, err = _run(capsys, "run", "gd-rate", *TINY_RUN, "--quick", "--out", fresh)
    assert rc == 0, err
    with _read_only_copy(fresh, tmp_path) as out:
        before = _files(out)
        rc, _, err = _run(capsys, "run", "gd-rate", *TINY_RUN, "--quick", "--out", out)
        line = _one_line_error(err)
        assert rc == 2 and f"{out} is read-only; choose a writable --out folder" in line
        assert "not a readable SQLite database" not in line
        assert _files(out) == before
        rc, text, err = _run(capsys, "runs", "--out", out)
        assert rc == 0 and "ok" in text, err


# ------------------------------------------------------------------ 5. file-system errors
def _fs_error_cases() -> list[tuple[str, list[str], str]]:
    long = "n" * 300
    return [
        ("run-through-a-file", ["run", "gd-rate", *TINY_RUN, "--out", "{file}/sub"],
         "a part of the path is a file"),
        ("reproduce-through-a-file",
         ["reproduce", "--only", "gd-rate", *TINY_GD_RATE, "--quick", "--out", "{file}/sub"],
         "a part of the path is a file"),
        ("runs-through-a-file", ["runs", "--out", "{file}/sub"], "{file}"),
        ("report-to-through-a-file", ["report", "--out", "{good}", "--to", "{file}/sub"],
         "a part of the path is a file"),
        ("optimize-out-is-a-folder", ["optimize", "lee-2d", "--steps", "3", "--out", "{dir}.csv"],
         "is a folder"),
        ("optimize-name-too-long",
         ["optimize", "lee-2d", "--steps", "3", "--out", f"{{tmp}}/{long}.csv"], "too long"),
        ("run-name-too-long", ["run", "gd-rate", *TINY_RUN, "--out", f"{{tmp}}/{long}"],
         "too long"),
        ("report-to-name-too-long", ["report", "--out", "{good}", "--to", f"{{tmp}}/{long}"],
         "too long"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [case[1:] for case in _fs_error_cases()],
    ids=[case[0] for case in _fs_error_cases()],
)
def test_file_system_errors_are_one_line_with_status_2(
    good_results, tmp_path, capsys, argv, message
):
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "adir.csv").mkdir()
    names = {
        "file": str(tmp_path / "afile"),
        "dir": str(tmp_path / "adir"),
        "tmp": str(tmp_path),
        "good": str(good_results),
    }
    rc, _, err = _run(capsys, *[a.format(**names) for a in argv])
    line = _one_line_error(err)
    assert rc == 2 and message.format(**names) in line


# ---------------------------------------------------------------------- 6. odd stored rows
def _add_odd_rows(out: Path) -> dict[str, str]:
    """Copies of the stored run with one column each made undecodable, and a sweep record
    that is not JSON; returns {key: what is odd}."""
    conn = sqlite3.connect(out / "runs.sqlite", isolation_level=None)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    (row,) = conn.execute(f"SELECT {', '.join(columns)} FROM runs").fetchall()
    odd = {"config": "[1,2]", "metrics": "null", "seconds": "abc", "versions": "{bad"}
    keys = {}
    for column, value in odd.items():
        values = dict(zip(columns, row, strict=True))
        values.update(key=uuid.uuid4().hex, **{column: value})
        conn.execute(
            f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [values[c] for c in columns],
        )
        keys[values["key"]] = column
    keys_json = json.dumps([row[0], *keys])
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('sweep:gd-rate', ?)", (keys_json[:-3],))
    conn.close()
    return keys


def test_odd_stored_rows_are_skipped_and_named(good_results, tmp_path, capsys):
    out = _copy(good_results, tmp_path / "res")
    odd = _add_odd_rows(out)

    rc, text, err = _run(capsys, "runs", "--out", out)
    assert rc == 0 and "1 runs in" in text and "Traceback" not in err
    for key, column in odd.items():
        assert f"skipped stored run {key}: {column}" in err

    rc, text, err = _run(capsys, "report", "--out", out)
    assert rc == 0 and "Traceback" not in err
    assert "latest sweep of gd-rate is unreadable" in err
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Notes on the store" in page and all(key in page for key in odd)

    with pytest.warns(RuntimeWarning, match="skipped stored run"):
        assert len(load_runs(out)) == 1
    with Store(out, readonly=True) as store:
        assert len(store.rows()) == 1 and set(store.skipped) == set(odd)
