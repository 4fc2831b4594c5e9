"""`unmask team-server`: one model (or several replicas of it) behind HTTP for a whole team, on Ray Serve.

Every API shape (the native /v1/infill, llama.cpp's /infill, OpenAI's /v1/completions with a suffix,
Mistral's /v1/fim/completions) becomes the same `job.Job`, which becomes engine.batch.InfillRequests; one
engine.batch.Batcher per replica denoises the requests of all clients together.

  job.py        Job, Limits, RequestRefused: what every shape turns into and what it is checked against
  native.py     POST /v1/infill
  llama.py      POST /infill (llama.cpp; llama.vim, llama.vscode)
  openai.py     POST /v1/completions (OpenAI legacy completions; minuet-ai.nvim, Continue's openai provider)
  mistral.py    POST /v1/fim/completions (Mistral FIM; Continue's mistral provider, minuet's codestral)
  templates.py  FIM prompt templates (<|fim_prefix|>...) found in a prompt sent without a suffix
  http.py       bearer token, body size limit, JSON decoding, error bodies, SSE framing
  latency.py    p50/p95 over recent requests
  app.py        the Ray Serve deployment: model and Batcher per replica, the routes
  launch.py     ray.init, serve.start, deploy, wait until ready, shut down on SIGINT/SIGTERM

Ray Serve is the `team` extra (`pip install 'unmask[team]'`); nothing here is imported by the LSP server.
"""
