"""The sync daemon: the only importer of watchdog."""
