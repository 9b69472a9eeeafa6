"""The gateway hooks.  ``DEFAULT_CONN_NAME`` lives here, import-light, for DAG files and operator
signatures."""

#: The connection id used when none is given; :attr:`~every8d.hooks.every8d.Every8dHook.default_conn_name`.
DEFAULT_CONN_NAME = "every8d_default"
