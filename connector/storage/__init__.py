"""Databases: URLs per driver, SQLite pragmas, schema migrations, a throwaway PostgreSQL."""
