"""Test harness shared by the tests, ``make demo`` and ``bench/``."""
