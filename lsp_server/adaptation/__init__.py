"""Adapting the network to the workspace: the server starts one low-priority process (job.py) that fine-tunes
a copy of the model on the project's files into the user's cache (cache.py), and the engine thread adopts
the result between requests (runner.py owns the process and its state for `unmask/status`). A later start
finds the adapted checkpoint in the cache and reuses it while the files have not changed much."""
