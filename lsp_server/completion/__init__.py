"""A completion request, from the handler to the model and back.

The path of one inline completion (or `textDocument/completion`):

  server.py         UnmaskServer.suggest: the document's snapshot at the cursor; a cache.SuggestionCache hit
                    answers at once, else
  scheduler.py      Scheduler.run: per-document order on the event loop; debounce, a newer request supersedes
                    this one (outcomes.Superseded), `$/cancelRequest` sets its CancelToken's flag; then
  worker.py         Worker.complete: the engine thread, the only one that touches the model and the parsed
                    documents (documents/parsed.py), with the repository memory; it calls
  filler.py         complete: options -> infill (the context budget, the memory fed, a Filler over the model)
  infill.complete   the span at the cursor planned with tree-sitter, its context, post-processing, ranking;
                    each candidate is one call of the Filler, i.e.
  model.infill      engine.DiffusionLM (models.load), or a team server's remote.remote.RemoteModel

and back: a Suggestion or NoSuggestion (lsp_server/outcomes.py; cached), or another outcome saying why there
is no answer this time (Superseded, Interrupted, NoModel, Unreachable, RemoteRefused). A model load goes
through worker.py too (outcomes.Loaded, LoadFailed) with progress.py's work-done progress.
"""
