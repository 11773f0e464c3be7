"""``kubectl pgbackup``, the kubectl plugin: a client of the operator's CRDs for the people who
run backups, using their own kubeconfig and nothing else.

It lives beside the operator because it speaks the operator's API (group, annotations, the
names of what the operator makes: ``api``, ``names``) and nothing of the job's internals; it
is installed with the project as the ``kubectl-pgbackup`` command (``pyproject.toml``), which
kubectl finds on the ``PATH``.

- ``cluster``  the user's kubeconfig, and every request named by the verb and resource RBAC checks;
- ``views``    pure functions: the status table, and its JSON and YAML;
- ``cli``      the commands, their arguments and exit codes.
"""
