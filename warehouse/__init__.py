"""The on-disk warehouse: layout, atomic Parquet writes, locks, DuckDB views and ingestion.

This package knows tables and files, never models: features/ and heads/ store what they make
through it.
"""
from warehouse.layout import Warehouse, open_warehouse

__all__ = ["Warehouse", "open_warehouse"]
