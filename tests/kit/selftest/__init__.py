"""The kit's own checks: tests whose subject is the test kit, not pgbackup.

The stand-in kubelet (``tests/kit/kubelet.py``), the fault proxy (``devenv/faultproxy.py``)
and the storage emulators (``devenv/azurite.py``, ``devenv/fakegcs.py``) are what the product
lanes stand on: a kubelet that ran a pod with less than it asked for, a proxy that let a client
slip past its faults, or an emulator that stopped refusing a second writer would make a
pgbackup test pass for the wrong reason. Their checks live here, beside the kit, so that a
failure names the kit rather than pgbackup, and the product lanes hold tests of pgbackup only.

This lane runs in the pytest process of ``tests/k8s``, ``tests/faults`` and ``tests/hostile`` (scripts/test): the
stand-in's runs need root as the e2e tests do, and the emulator checks share that process's
Azurite and fake-gcs-server with the operator and fault tests.
"""
