# Airflow 3.3 with this provider installed from the repository.
# docker-compose.yaml builds it for every Airflow service and the sandbox.
FROM apache/airflow:3.3.2

COPY --chown=airflow:0 pyproject.toml README.md requirements.txt /opt/every8d/
COPY --chown=airflow:0 plugins /opt/every8d/plugins
RUN pip install --no-cache-dir "/opt/every8d[postgres,report,celery]"
