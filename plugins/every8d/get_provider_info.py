"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from every8d.settings import provider_config


def get_provider_info() -> dict:
    """Connection type ``every8d`` with its form fields and the ``[every8d]`` section; no heavy imports
    here."""
    return {
        "package-name": "airflow-provider-every8d",
        "name": "EVERY8D",
        "description": "EVERY8D enterprise SMS gateway (Taiwan): SMS/MMS campaigns and delivery analytics.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "EVERY8D",
                "external-doc-url": "https://api.e8d.tw",
                "python-modules": ["every8d.hooks.every8d"],
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "EVERY8D", "python-modules": ["every8d.hooks.every8d"]}],
        "operators": [
            {
                "integration-name": "EVERY8D",
                "python-modules": ["every8d.operators.send", "every8d.operators.cancel"],
            }
        ],
        "sensors": [{"integration-name": "EVERY8D", "python-modules": ["every8d.sensors.batch"]}],
        "triggers": [{"integration-name": "EVERY8D", "python-modules": ["every8d.triggers.batch"]}],
        "notifications": ["every8d.notifications.every8d.Every8dNotifier"],
        "config": provider_config(),
        "connection-types": [
            {
                "hook-class-name": "every8d.hooks.every8d.Every8dHook",
                "hook-name": "EVERY8D SMS",
                "connection-type": "every8d",
                "conn-fields": {
                    "timeout": {
                        "label": "Read timeout (seconds)",
                        "schema": {"type": ["number", "null"], "default": 30, "minimum": 1},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (seconds)",
                        "schema": {"type": ["number", "null"], "default": 10, "minimum": 1},
                    },
                    "verify": {
                        "label": "Verify TLS certificates",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "validity_minutes": {
                        "label": "Default validity (minutes, RETRYTIME)",
                        "schema": {"type": ["integer", "null"], "default": 1440, "minimum": 1},
                        "description": "How long the gateway keeps trying to deliver a message.",
                    },
                    "read_retries": {
                        "label": "Retries for read-only calls",
                        "schema": {"type": ["integer", "null"], "default": 3, "minimum": 0},
                        "description": "Sends are never retried once the request has left.",
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {
                        "host": "Base URL",
                        "login": "UID (account)",
                        "password": "PWD (password)",
                    },
                    "placeholders": {
                        "host": "https://api.e8d.tw",
                        "login": "your EVERY8D account",
                    },
                },
            }
        ],
    }
