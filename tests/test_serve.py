"""How `streamlit run dashboard.py` serves the dashboard: on this machine only, unless told otherwise."""
import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from _worker_helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]


def listening_addresses(port: int) -> set[str]:
    """Addresses with a socket listening on TCP `port`, read from /proc/net/tcp and tcp6."""
    found = set()
    for table, width in (("tcp", 4), ("tcp6", 16)):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.split(":")
            if state != "0A" or int(local_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)  # the kernel writes each 32-bit word in host order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
            found.add(str(ipaddress.ip_address(raw)))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the listening sockets from /proc")
def test_dashboard_listens_on_localhost_only(tmp_path):
    """Check that a plain `streamlit run dashboard.py` accepts connections from this machine only."""
    port = free_port()
    env = dict(os.environ, GRADLOSS_HOME=str(tmp_path), GRADLOSS_NO_LOCAL_WORKER="1")
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard.py",
                             "--server.port", str(port), "--server.headless", "true"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        addresses = wait_for(lambda: listening_addresses(port) or proc.poll() is not None, 90,
                             "streamlit to listen")
        assert proc.poll() is None, (tmp_path / "streamlit.log").read_text()[-3000:]
        assert addresses == {"127.0.0.1"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
