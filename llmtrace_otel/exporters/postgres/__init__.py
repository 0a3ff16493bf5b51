"""PostgreSQL span store: the shared trace store of several instances."""

from __future__ import annotations
