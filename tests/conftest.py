import os

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the GPU machine may lack hypothesis; tests/test_gpu.py does not need it
    settings = None

if settings is not None:
    # Fast by default; derandomized (reproducible) under CI.
    settings.register_profile("fast", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("thorough", max_examples=1000, deadline=None)
    settings.load_profile(os.environ.get("NMREF_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "fast"))

pytest_plugins = ["pytester"]

try:  # the CLI runs BLAS on one thread by default; in-process runs of the tests do the same, so that a run
    # started in a subprocess through the CLI and one started here sum in the same order (bit-identical)
    import numpy  # noqa: F401 - threadpoolctl limits the libraries already loaded: load OpenBLAS first
    from threadpoolctl import threadpool_limits
    _BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")
except ImportError:  # the GPU machine may lack threadpoolctl
    pass
