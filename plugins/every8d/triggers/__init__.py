"""Deferrable triggers (run in Airflow's triggerer)."""
