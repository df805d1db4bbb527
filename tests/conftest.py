"""Shared fixtures. Tests run cheapest first: unit (pure), integration (one shared local Ray cluster),
e2e (the real CLI in subprocesses, each with its own embedded cluster)."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

ORDER = {"unit": 0, "integration": 1, "e2e": 2}


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: ORDER.get(pathlib.Path(str(item.fspath)).parent.name, 3))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray cluster for every integration test of the session (Ray Train spends ~20 s per trial
    starting workers; starting Ray itself once saves the rest)."""
    import ray

    os.chdir(ROOT)  # trial workers import user functions relative to the working directory
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
