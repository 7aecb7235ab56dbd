"""Shared fixtures: the real RT corpus and small real subsets of it."""

from __future__ import annotations

import pytest

from pipeline.data import Dataset, load, split


@pytest.fixture(scope="session")
def rt() -> Dataset:
    """The whole Rotten Tomatoes corpus (downloaded once into the data cache)."""
    return load("rt")


@pytest.fixture(scope="session")
def rt_split(rt: Dataset) -> tuple[Dataset, Dataset]:
    """(pool, test) of RT."""
    return split(rt)
