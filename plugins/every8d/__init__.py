"""Apache Airflow provider for the EVERY8D enterprise SMS gateway.

Kept import-light on purpose: DAG files import from this package at parse time.
"""

__version__ = "0.1.0"
