"""The PostgreSQL mirror: the only importer of psycopg and the only place SQL runs
(connections, migrations, every statement, sync, verify, reads)."""
