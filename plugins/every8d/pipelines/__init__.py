"""The task bodies of the provider's own DAGs: DAG params and ``[every8d]`` options in, engine calls out.

This is Airflow-facing glue (a Connection becomes a client here), kept out of the DAG files
so that parsing them stays cheap, and out of the engines so that they know nothing of Airflow.
"""
