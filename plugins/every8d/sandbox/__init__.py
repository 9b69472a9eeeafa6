"""A local EVERY8D gateway (API 2.1) for end-to-end tests, demos and staging.

``python -m every8d.sandbox`` runs it; :class:`SandboxServer` runs it in a
subprocess; :class:`SandboxClient` steers it through its ``/_sandbox``
control API; ``every8d.sandbox.pytest_plugin`` provides fixtures.  Imports are
lazy so that starting the server does not load the client's dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["READY_PREFIX", "SandboxClient", "SandboxServer"]

#: First line the server prints on stdout, followed by its root URL.
READY_PREFIX = "EVERY8D sandbox listening on "

if TYPE_CHECKING:
    from every8d.sandbox.client import SandboxClient
    from every8d.sandbox.server import SandboxServer


def __getattr__(name: str):
    if name == "SandboxClient":
        from every8d.sandbox.client import SandboxClient

        return SandboxClient
    if name == "SandboxServer":
        from every8d.sandbox.server import SandboxServer

        return SandboxServer
    raise AttributeError(name)
