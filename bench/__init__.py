"""Benchmark of ``postgres_db_to_schema`` against the reference ways of moving databases into schemas."""
