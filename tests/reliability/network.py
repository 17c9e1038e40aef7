"""A test host of its own: a network namespace joined to this one by a veth pair, cut off and rejoined at will.

Both ends take addresses from a private /30 that never leaves this machine; the namespace reaches every address
of this host through its link (its default route), so several namespaces can share one server address. Cutting
the link drops packets silently (no reset), as a failed switch or a partition does; this host itself still
reaches the addresses of a cut link. Needs root (CAP_NET_ADMIN) and iproute2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# 10.213.0.0/16, split into /30 links: host end .1, namespace end .2 of each.
LINK_BLOCK = (10, 213)


def _ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True, text=True)


def namespaces_unavailable() -> str | None:
    """Why this machine cannot make a network namespace, or None when it can."""
    if shutil.which("ip") is None:
        return "needs iproute2's `ip` (apt install iproute2)"
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) to make a network namespace and a veth pair"
    probe = f"lrprobe{os.getpid() % 100000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


@dataclass(frozen=True)
class IsolatedHost:
    """A network namespace reached over one veth link; run a command in it through ``run_through``."""

    namespace: str
    host_interface: str
    host_address: str
    guest_address: str

    @property
    def run_through(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace]

    def cut(self) -> None:
        """Take the link down: packets both ways are dropped, connections hang rather than reset."""
        _ip("link", "set", self.host_interface, "down")

    def rejoin(self) -> None:
        _ip("link", "set", self.host_interface, "up")


@contextmanager
def isolated_host(index: int = 0) -> Iterator[IsolatedHost]:
    """Make the namespace and its link (names unique to this process and ``index``, 0..3), remove both afterwards."""
    slot = (os.getpid() * 4 + index) % 16384  # a /30 of LINK_BLOCK per host of a process: runs do not collide
    third, fourth = divmod(slot * 4, 256)
    prefix = f"{LINK_BLOCK[0]}.{LINK_BLOCK[1]}.{third}"
    host = IsolatedHost(
        namespace=f"lepton-test-{slot}",
        host_interface=f"lrt{slot}h",
        host_address=f"{prefix}.{fourth + 1}",
        guest_address=f"{prefix}.{fourth + 2}",
    )
    guest_interface = f"lrt{slot}g"
    _ip("netns", "add", host.namespace)
    try:
        _ip("link", "add", host.host_interface, "type", "veth", "peer", "name", guest_interface)
        _ip("link", "set", guest_interface, "netns", host.namespace)
        _ip("addr", "add", f"{host.host_address}/30", "dev", host.host_interface)
        _ip("link", "set", host.host_interface, "up")
        inside = ["netns", "exec", host.namespace, "ip"]
        _ip(*inside, "addr", "add", f"{host.guest_address}/30", "dev", guest_interface)
        _ip(*inside, "link", "set", guest_interface, "up")
        _ip(*inside, "link", "set", "lo", "up")
        # every host address through the link: a server on another namespace's host end is reached too
        _ip(*inside, "route", "add", "default", "via", host.host_address)
        yield host
    finally:
        subprocess.run(["ip", "link", "delete", host.host_interface], capture_output=True)
        subprocess.run(["ip", "netns", "delete", host.namespace], capture_output=True)
