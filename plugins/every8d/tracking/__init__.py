"""Delivery tracking: registered batches, the status sync, push merges, replies and opt-outs.

Works on Arrow tables and a :class:`~every8d.warehouse.base.Warehouse`; the
only module that talks to the gateway is :mod:`every8d.tracking.sync`, and
only through :class:`~every8d.hooks.every8d.Every8dHook`.
"""
