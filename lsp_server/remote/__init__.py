"""The team server's client (`unmask serve --remote URL`, option model.remote): a RemoteModel standing in
for engine.DiffusionLM (remote.py), the repository memory's texts sent with each request (remote_memory.py),
and HTTP requests with a cancel flag over a kept connection (http_json.py). The team server itself is
lsp_server/team/."""
