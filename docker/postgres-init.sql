-- The EVERY8D warehouse lives in its own database, beside Airflow's metadata.
CREATE DATABASE every8d OWNER airflow;
