"""The file-and-git API: `Repository`, validated writes, history and scaffolding."""
