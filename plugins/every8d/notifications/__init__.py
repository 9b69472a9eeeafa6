"""Airflow notifiers: SMS alerts through EVERY8D (:class:`~every8d.notifications.every8d.Every8dNotifier`)."""
