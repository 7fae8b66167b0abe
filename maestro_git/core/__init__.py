"""The pure core: bytes and records in, records out. No pygit2, psycopg, whoosh, watchdog, clock or
subprocess here; only the stdlib, pydantic, YAML, ruamel, markdown-it/nh3, `settings` and `errors`."""
