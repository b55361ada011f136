"""What ``make run`` and ``make test`` use and production never does.

* ``embedded_db``: a PostgreSQL in ``.data/pg`` when ``DATABASE_URL`` is unset;
  the Makefile runs every command through ``python -m devtools.embedded_db run``,
  which sets ``DATABASE_URL`` for it. Settings never start it.
* ``seed_demo``: the demo operator, tenants and products, made through the
  same services as the API (a management command, hence this is a Django app).

No runtime module imports this package (an import-linter contract).
"""
