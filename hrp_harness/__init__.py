"""HRP PostgreSQL platform harness (thin orchestration; the data work is SQL)."""
