"""Where an outcome goes besides the log: people, monitors and Prometheus.

A room beside ``pg`` and ``storage``: it uses only ``core``, and ``cli`` calls it around a
command. Every channel is optional, bounded in time (``BACKUP_NOTIFY_TIMEOUT``) and can never
change a run's exit code: a failed send is one WARNING line and nothing more.

- ``notify``      notifications through Apprise URLs (``BACKUP_NOTIFY_URLS``): failures, verify
                  failures and shrink alarms, or every run with ``BACKUP_NOTIFY_ON=always``;
- ``healthcheck`` dead man's switch pings (``BACKUP_HEALTHCHECK_URL``): start, success, fail;
- ``metrics``     the last run's Prometheus metrics to a textfile for node_exporter and/or a
                  Pushgateway;
- ``reporter``    the one object ``cli`` talks to: ``started`` and ``finished``.

The URLs carry tokens. They are Secrets from the settings on, each one registered for log
redaction, never put in argv (nothing here starts a process), and the libraries' own
loggers are kept quiet so they cannot print them.
"""
