"""Same sweep, same bits: sequential, process and Ray executors store identical results.
The default path never imports Ray."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import runner_toys  # noqa: E402
from runner_toys import toys_registered  # noqa: E402, F401

from saddlescape.errors import ConfigError, UnknownNameError  # noqa: E402
from saddlescape.runner import Store, make_executor, run_sweep  # noqa: E402
from saddlescape.runner.executors import SequentialExecutor, as_completed  # noqa: E402

SWEEP = {"overrides": {"dim": 48, "steps": 30}, "grid": {"lr": [0.05, 0.1], "seed": [0, 1, 2]}}


def _stored(directory: Path) -> dict[str, tuple]:
    with Store(directory, create=False) as store:
        out = {}
        for r in store.records():
            arrays = {name: (a.dtype.str, a.shape, a.tobytes()) for name, a in r.arrays.items()}
            out[r.key] = (r.experiment, r.status, r.config, r.metrics, arrays)
        return out


@pytest.fixture(scope="module")
def sequential_results(tmp_path_factory) -> dict[str, tuple]:
    directory = tmp_path_factory.mktemp("sequential")
    summary = run_sweep("toy_quadratic", store=directory, progress=False, **SWEEP)
    assert summary.ok == 6
    return _stored(directory)


def _assert_identical(a: dict[str, tuple], b: dict[str, tuple]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key] == b[key], key  # metrics equal as floats, arrays equal as bytes


@pytest.mark.slow
def test_process_executor_stores_bit_identical_results(sequential_results, tmp_path):
    with make_executor("process", workers=2) as pool:
        assert list(pool.map(pow, [2, 3, 4], [2, 2, 2])) == [4, 9, 16]
        futures = [pool.submit(os.getpid) for _ in range(4)]
        assert {f.result() for f in as_completed(futures)} != {os.getpid()}
        summary = run_sweep("toy_quadratic", store=tmp_path, executor=pool, progress=False, **SWEEP)
        assert pool.submit(abs, -1).result() == 1  # a given executor is left running
        # workers import an unregistered experiment class by module and qualified name
        unregistered = run_sweep(runner_toys.ToyUnregistered, grid={"seed": [0, 1]},
                                 store=tmp_path / "u", executor=pool, progress=False)  # fmt: skip
        assert unregistered.ok == 2
    assert (summary.ok, summary.workers, summary.executor) == (6, 2, "ProcessExecutor")
    _assert_identical(sequential_results, _stored(tmp_path))


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_executor_stores_bit_identical_results(sequential_results, tmp_path):
    import ray

    assert not ray.is_initialized()
    summary = run_sweep(
        "toy_quadratic", store=tmp_path, executor="ray", workers=2, progress=False, **SWEEP
    )
    assert not ray.is_initialized()  # the local cluster it started is shut down
    assert (summary.ok, summary.workers, summary.executor) == (6, 2, "ray")
    _assert_identical(sequential_results, _stored(tmp_path))


def test_executor_names_and_options_are_checked():
    assert isinstance(make_executor("sequential"), SequentialExecutor)
    with pytest.raises(UnknownNameError, match="'dask'"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="workers"):
        make_executor("process", workers=0)
    with pytest.raises(ConfigError, match="address"):
        make_executor("process", address="auto")


def test_sequential_future_carries_exceptions():
    future = SequentialExecutor().submit(lambda: 1 / 0)
    assert isinstance(future.exception(), ZeroDivisionError)
    assert SequentialExecutor().submit(np.add, 2, 3).result() == 5
    with SequentialExecutor() as pool:
        assert list(pool.map(np.add, [1, 2], [10, 20])) == [11, 22]


def test_ray_missing_gives_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'saddlescape\[ray\]'"):
        make_executor("ray")


@pytest.mark.slow
def test_default_path_does_not_import_ray(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        import runner_toys
        runner_toys.register_toys()
        from saddlescape.cli import main
        rc = main(["run", "toy_quadratic", "--set", "dim=3", "--set", "steps=2",
                   "--out", {str(tmp_path)!r}, "--no-progress"])
        assert rc == 0, rc
        main(["runs", "--out", {str(tmp_path)!r}])
        from saddlescape.runner import load_runs
        assert len(load_runs({str(tmp_path)!r})) == 2
        print("ray" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def _pid_after(seconds: float) -> int:
    import time

    time.sleep(seconds)
    return os.getpid()


def test_process_workers_exit_when_the_sweep_is_killed(tmp_path):
    """SIGKILL gives the pool no chance to shut down: the workers (and with them the fork
    server) must notice and leave rather than linger with their memory."""
    import signal
    import time

    from saddlescape.runner.executors import _alive

    code = textwrap.dedent(
        """
        import sys, concurrent.futures as cf
        from saddlescape.runner import make_executor
        sys.path.insert(0, sys.argv[1])
        from test_executors import _pid_after
        pool = make_executor("process", workers=2)
        pids = [f.result() for f in [pool.submit(_pid_after, 0.3) for _ in range(2)]]
        print(*pids, flush=True)
        pool.submit(_pid_after, 600)  # a long run in flight when the sweep dies
        import time; time.sleep(600)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(HERE)], stdout=subprocess.PIPE, text=True
    )
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert workers and all(_alive(p) for p in workers)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers), workers


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("nonsense", "address must be 'auto', 'host:port'"),
        ("127.0.0.1:1", "no Ray cluster answers at '127.0.0.1:1'"),
        ("ray://127.0.0.1:1", "no Ray cluster answers"),
    ],
)
def test_an_unreachable_ray_address_fails_fast_naming_it(address, message):
    pytest.importorskip("ray")
    import ray

    with pytest.raises(ConfigError, match=re.escape(message)):
        make_executor("ray", workers=1, address=address)
    assert not ray.is_initialized()
