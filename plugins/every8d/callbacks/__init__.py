"""Inbound status and reply pushes from EVERY8D: a FastAPI app, a local journal and its flush.

``create_app`` (in :mod:`every8d.callbacks.app`) builds the receiver, served
by ``airflow api-server`` as a plugin under ``/every8d`` or on its own with
``python -m every8d.callbacks``; :func:`every8d.callbacks.flush.flush_journal`
moves recorded pushes into the warehouse.  See docs/pushes.md.  Submodules load
lazily so that importing this package costs nothing.
"""
