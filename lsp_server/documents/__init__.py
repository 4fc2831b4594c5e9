"""The open documents and the workspace's files: the event loop's copy of each document's text
(documents.py), the engine thread's parses of it (parsed.py), the `unmask/document` probe comparing the two
(probe.py), and the workspace's source files the repository memory reads (workspace.py)."""
