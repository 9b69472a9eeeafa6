"""EVERY8D HTTP API 2.1: one module per endpoint family (wire formats only, no I/O) and the client over them.

``common`` holds what every endpoint shares (the path, error bodies, Taipei
times); ``sms``, ``mms``, ``status``, ``replies``, ``credit`` and ``booking``
each hold one family's forms and parsers; ``client`` puts them on a transport.
"""

from every8d.client.v21.common import API_PATH

__all__ = ["API_PATH"]
