"""A real two-node Ray cluster on this machine: ``ray start --head`` plus a worker node started separately with
``ray start --address``, as on an existing cluster; ``gambit-gym experiment run --backend ray --address`` spreads a
sweep over both nodes and writes the serial backend's numbers.

The cluster is this test's own: every port is a free one, each node has a fresh temp dir, and the test stops
exactly the processes it started (``ray stop`` is not used: it stops every Ray on the machine)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agents.cli import main as cli
from agents.experiments import load_experiment, run_experiments
from tests._experiments import ROOT, csv_texts

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ray = pytest.importorskip("ray")

RAY = str(Path(sys.executable).with_name("ray"))
#: the worker node's address: a loopback address of its own (Linux routes all of 127/8 to lo), so the tasks'
#: timeline events say which node ran them
WORKER_IP = "127.0.0.2"
STARTED = "Ray runtime started"

SWEEP = textwrap.dedent("""
    name = "cluster"
    horizon = 150
    replications = 6
    seed = 17
    [env]
    variant = "synthetic"
    [agents.LinTS]
    type = "LinearTS"
    [agents.StdTS]
    type = "StandardTS"
    [sweep]
    "env.n_actions" = [3, 5, 8, 12]
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def node_ports() -> list[str]:
    """Free ports for everything a node listens on (two nodes on one machine must not share the defaults)."""
    names = ("node-manager", "object-manager", "metrics-export", "dashboard-agent-listen", "dashboard-agent-grpc",
             "runtime-env-agent")
    return [f"--{name}-port={free_port()}" for name in names]


def proc_files(name: str, binary: bool = False):
    """``(pid, /proc/pid/name)`` of every process still there when read."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            path = Path(f"/proc/{entry}/{name}")
            try:
                yield int(entry), path.read_bytes() if binary else path.read_text()
            except OSError:
                continue


def children_of() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for pid, stat in proc_files("stat"):
        tree.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(pid)
    return tree


def descendants(pids: list[int]) -> dict[int, bytes]:
    """The processes below ``pids`` (with their command lines, to tell a reused pid apart)."""
    tree, found, todo = children_of(), {}, list(pids)
    while todo:
        for child in tree.get(todo.pop(), []):
            try:
                found[child] = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            todo.append(child)
    return found


def mentioning(text: str) -> dict[int, bytes]:
    """The processes whose command line holds ``text`` (this test's unique temp dir)."""
    return {pid: cmdline for pid, cmdline in proc_files("cmdline", binary=True) if text.encode() in cmdline}


def stop(nodes: list[subprocess.Popen], temp_dir: str) -> None:
    """Stop this test's nodes: SIGTERM to each ``ray start --block`` (it shuts its node down), then SIGKILL to
    whatever of theirs is left (found before they went, or by the temp dir in its command line)."""
    ours = {**descendants([p.pid for p in nodes]), **mentioning(temp_dir)}
    for node in nodes:
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)
    for node in nodes:
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    ours.update(mentioning(temp_dir))
    for pid, cmdline in ours.items():
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline:  # still the same process
                os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


def startup_race(temp_dir: str) -> bool:
    """Whether a raylet under ``temp_dir`` gave up waiting for its dashboard agent's port file: Ray 2.5x-2.60 waits
    a fixed 15 s (not configurable), which a loaded machine can exceed while the agent imports."""
    return any("Timed out waiting for file" in log.read_text(errors="replace")
               for log in Path(temp_dir).glob("session_*/logs/raylet*.out"))


def start_node(make_args: Callable[[], list[str]], temp_dir: str, log: Path, attempts: int = 2,
               timeout: float = 150.0) -> subprocess.Popen:
    """``ray start --block <make_args()>``, waited for until it says the node runs; started again (with fresh
    ports) only when it lost the agent start-up race of :func:`startup_race`."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    for attempt in range(1, attempts + 1):
        args = [*make_args(), f"--temp-dir={temp_dir}"]
        node = subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args], cwd=ROOT, env=env,
                                stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while STARTED not in log.read_text(errors="replace"):
            if node.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        else:
            return node
        stop([node], temp_dir)
        if attempt == attempts or not startup_race(temp_dir):
            how = f"exited {node.returncode}" if node.returncode is not None else "timed out"
            raise RuntimeError(f"ray start {' '.join(args[:2])} did not start ({how}, attempt {attempt}):\n"
                               + log.read_text(errors="replace")[-3000:])
        shutil.rmtree(temp_dir, ignore_errors=True)
        os.makedirs(temp_dir)
    raise AssertionError("unreachable")


@pytest.fixture
def cluster_token(monkeypatch):
    """Token authentication with a token of this cluster's own, given to the nodes and to this process (the
    driver) by environment, as on a real cluster; not ~/.ray/auth_token, which other Rays on the machine share."""
    from ray._private.authentication_test_utils import reset_auth_token_state

    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    reset_auth_token_state()  # this process may have loaded another token before
    yield
    monkeypatch.undo()
    reset_auth_token_state()


def test_a_sweep_spread_over_a_two_node_cluster_writes_the_serial_numbers(tmp_path, cluster_token):
    definition = tmp_path / "cluster.toml"
    definition.write_text(SWEEP)
    run_experiments([load_experiment(definition)], tmp_path / "serial", backend="serial", progress=False)

    # each node's own temp dir, short: a node's unix sockets live under it (a socket path has at most 107 bytes)
    head_dir, worker_dir = (tempfile.mkdtemp(prefix=f"gg-ray-{name}-", dir="/tmp") for name in ("head", "worker"))
    head_ip = ray.util.get_node_ip_address()
    port = 0
    nodes: list[subprocess.Popen] = []

    def head_args() -> list[str]:
        nonlocal port
        port = free_port()
        return ["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                f"--dashboard-port={free_port()}", *node_ports()]

    try:
        nodes.append(start_node(head_args, head_dir, tmp_path / "head.log"))
        address = f"{head_ip}:{port}"
        nodes.append(start_node(lambda: [f"--address={address}", f"--node-ip-address={WORKER_IP}", "--num-cpus=1",
                                         "--resources=" + json.dumps({"worker_node": 1}), *node_ports()],
                                worker_dir, tmp_path / "worker.log"))

        out = tmp_path / "ray"
        assert cli(["experiment", "run", str(definition), "--backend", "ray", "--address", address, "--quiet",
                    "--out", str(out)]) == 0
        assert csv_texts(out / "cluster") == csv_texts(tmp_path / "serial" / "cluster")

        ray.init(address=address, logging_level="WARNING")
        try:
            alive = [n for n in ray.nodes() if n["Alive"]]
            # the sweep is the only work this cluster ran: every worker-process event is one of its configs
            # (each node reports its task events every second or so: wait for both, up to 30 s)
            deadline = time.monotonic() + 30
            while True:
                ran_on = {e["pid"] for e in ray.timeline() if e.get("tid", "").startswith("worker:")}
                if len(ran_on) == 2 or time.monotonic() > deadline:
                    break
                time.sleep(1)
        finally:
            ray.shutdown()
        assert len(alive) == 2
        assert {n["NodeManagerAddress"] for n in alive} == {head_ip, WORKER_IP}
        assert [n["Resources"].get("worker_node") for n in alive if n["NodeManagerAddress"] == WORKER_IP] == [1.0]
        assert ran_on == {head_ip, WORKER_IP}, f"the configs ran on {ran_on}"
    finally:
        for node, temp_dir in reversed(list(zip(nodes, (head_dir, worker_dir)))):
            stop([node], temp_dir)
        for temp_dir in (head_dir, worker_dir):
            stop([], temp_dir)  # anything of a node that failed to start
            shutil.rmtree(temp_dir, ignore_errors=True)
    assert not mentioning(head_dir) and not mentioning(worker_dir), "a process of this test's Ray outlived it"
