"""Dask worker preload of ``nmref sweep``'s LocalCluster.

A terminal's Ctrl-C reaches every process of its group, the cluster's worker processes too. The
workers ignore it and leave it to the sweep's own process, which closes the cluster and prints one
line (an interrupted point resumes from its checkpoint when the sweep is run again)."""
import signal


def dask_setup(worker):  # noqa: ARG001 - Dask's preload hook
    signal.signal(signal.SIGINT, signal.SIG_IGN)
