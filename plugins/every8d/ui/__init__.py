"""The EVERY8D pages of the Airflow UI (the Campaign tab and the overview); see :mod:`every8d.ui.app`."""
