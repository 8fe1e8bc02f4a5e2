"""Issue 13, item 11: the local Ray cluster a sweep starts — which addresses it listens on,
and that none of its processes outlives the sweep, also when the sweep is killed with
SIGKILL (Ray gets no chance to stop it; saddlescape's reaper does)."""

from __future__ import annotations

import importlib
import importlib.util
import ipaddress
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed"),
    pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc (Linux)"),
]

DRIVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import runner_toys
    runner_toys.register_toys()
    from saddlescape.runner import run_sweep
    summary = run_sweep(
        "toy_victim", store=sys.argv[2], executor="ray", workers=2, progress=False,
        overrides={"victim": 0, "pid_dir": sys.argv[3], "seconds": 0.1},
        grid={"seed": [0]} if sys.argv[4] == "hang" else {"seed": [1, 2, 3]},
    )
    print("done", summary.ok, flush=True)
    """
)


def _table() -> dict[int, tuple[int, str]]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                out[int(d)] = (int(fields[1]), fields[19])
            except (OSError, IndexError, ValueError):
                pass
    return out


def _descendants(root: int) -> dict[int, str]:
    procs = _table()
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    seen, todo = {}, [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in seen:
                seen[k] = procs[k][1]
                todo.append(k)
    return seen


def _alive(known: dict[int, str]) -> list[int]:
    procs = _table()
    return [pid for pid, start in known.items() if pid in procs and procs[pid][1] == start]


def _address(hexaddr: str) -> str:
    ip, _ = hexaddr.split(":")
    raw = bytes.fromhex(ip)
    words = struct.unpack(f"<{len(raw) // 4}I", raw)  # /proc stores each 32-bit word host-order
    packed = b"".join(struct.pack(">I", w) for w in words)
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, packed)


def _is_loopback(address: str) -> bool:
    """127.0.0.0/8 or ::1, also written as an IPv4-mapped IPv6 address (::ffff:127.0.0.1,
    which is how Ray's gRPC servers report it)."""
    ip = ipaddress.ip_address(address)
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def _listening(pids: list[int]) -> set[str]:
    """Addresses on which ``pids`` have listening TCP sockets (``/proc/net/tcp*``)."""
    inodes: dict[int, str] = {}
    for name in ("tcp", "tcp6"):
        with open(f"/proc/net/{name}") as fh:
            next(fh)
            for line in fh:
                f = line.split()
                if f[3] == "0A":  # LISTEN
                    inodes[int(f[9])] = _address(f[1])
    found = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in inodes:
                found.add(inodes[int(link[8:-1])])
    return found


def _start(tmp_path: Path, mode: str) -> subprocess.Popen:
    (tmp_path / "pids").mkdir()
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(HERE), str(tmp_path / "res"), str(tmp_path / "pids"),
         mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _wait_gone(known: dict[int, str], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while _alive(known) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(known)


def test_no_ray_process_outlives_a_sweep_killed_with_sigkill(tmp_path):
    driver = _start(tmp_path, "hang")
    try:
        marker = tmp_path / "pids" / "victim"
        deadline = time.monotonic() + 120
        while not marker.exists() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), driver.stderr.read() if driver.poll() is not None else ""
        cluster = _descendants(driver.pid)
        assert len(cluster) >= 3  # gcs_server, raylet, workers, agents, the reaper
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    assert _wait_gone(cluster, 10) == []


def test_local_cluster_listens_on_loopback_and_is_gone_after_the_sweep(tmp_path):
    driver = _start(tmp_path, "finish")
    cluster: dict[int, str] = {}
    addresses: set[str] = set()
    while driver.poll() is None:  # sample the cluster while the sweep runs
        now = _descendants(driver.pid)
        cluster.update(now)
        addresses |= _listening([driver.pid, *now])
        time.sleep(0.2)
    out, err = driver.communicate()
    assert driver.returncode == 0 and "done 3" in out, err[-3000:]
    assert _wait_gone(cluster, 5) == []
    assert addresses  # the cluster was seen listening
    exposed = sorted(a for a in addresses if not _is_loopback(a))
    assert exposed == [], f"the local cluster listens beyond the loopback: {exposed}"
