"""Which hosts are this machine's loopback interface: one answer for every layer and the emulator.

The CLI (``tunekeeper emulator --host``), the manifest checks (http only for loopback endpoints),
the cloud layer (plain http and the development token) and the emulator (URL imports only from
this machine) all ask the same question, so they ask it here. Imports nothing from tunekeeper, so
any package may use it, the emulator included; must not do I/O (no name resolution).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``; no DNS lookup."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """True when ``url`` points at this machine's loopback interface."""
    return is_loopback_host(urlsplit(url).hostname)
