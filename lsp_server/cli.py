"""unmask: the language server and the same completion pipeline on files.

  unmask serve [--tcp [--host H] [--port P]] [model options]   LSP over stdio (or TCP, 127.0.0.1 by default)
  unmask complete FILE --line L --col C [--json] [model options] the completion at line L, column C (1-based)
  unmask fill FILE [--marker M] [--in-place] [model options]     fill every hole marked M (default <|fill|>)
  unmask models                                                  the public checkpoints known to work
  unmask fit MODEL [--quantize q] [--context N] [--device d] [--json]
                                                                 the memory it needs, from config.json alone
  unmask adapt PATH [--minutes M] [--out DIR] [--model DIR]      fine-tune on a project's files
  unmask team-server [--host H] [--port P] [--replicas N] [--max-batch B] [--token T] [model options]
                                                                 HTTP completions for a team (Ray Serve)
  unmask train ...                                               python -m engine.training ...

Model options: --model DIR or a Hugging Face id ORG/NAME[@REVISION] (default: the embedded model), --device,
--dtype, --quantize, --threads, --options JSON (the server's initializationOptions schema, e.g.
'{"completion": {"maxLines": 8}}'), or --remote URL [--token T] for a team server's model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import msgspec

import infill
from infill import refactor
from infill.refactor import HOLE

from . import models
from .completion import filler
from .models import REMOTE_URL, TOKEN
from .options import Options, parse
from .protocol import convert

FILL_HELP = f"""Fill every hole in FILE, first to last, each seeing the holes filled before it. A hole is the
marker {HOLE} (change it with --marker) placed where code is missing: at the end of a line to finish it,
alone on a line for a whole line or block, or mid-line, e.g. `total = {HOLE}` or `if {HOLE}:`. The filled
file goes to stdout (or back into FILE with --in-place); exit status 1 if a hole stayed empty."""


TEAM_HELP = """Serve completions over HTTP to a whole team: one model (or --replicas copies) on Ray Serve,
every request batched with the others in flight. Endpoints: GET /v1/status, POST /v1/infill (unmask's own),
POST /infill (llama.cpp), POST /v1/completions (OpenAI, with suffix), POST /v1/fim/completions (Mistral).
Prints one line when every replica has loaded its model; SIGINT or SIGTERM stops it."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # every later argument belongs to engine.training
        from engine.training.__main__ import main as train

        return train(argv[1:])
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # `unmask models | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unmask", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(required=True, metavar="{serve,complete,fill,models,team-server,train}")
    serve = sub.add_parser("serve", help="the language server over stdio (or --tcp)")
    serve.add_argument("--tcp", action="store_true", help="listen on TCP instead of stdio")
    serve.add_argument(
        "--stdio", action="store_true", help="stdio (the default; accepted because clients pass it)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=2087)
    serve.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    serve.set_defaults(run=cmd_serve)
    complete = sub.add_parser("complete", help="print the completion at a position of a file")
    complete.add_argument("file", type=Path)
    complete.add_argument("--line", type=int, required=True, help="1-based line")
    complete.add_argument("--col", type=int, required=True, help="1-based column, in characters")
    complete.add_argument("--json", action="store_true",
                          help="print range, text, kind, confidence, probability, source and ms")
    complete.set_defaults(run=cmd_complete)
    fill = sub.add_parser("fill", help="fill the holes marked in a file", description=FILL_HELP)
    fill.add_argument("file", type=Path)
    fill.add_argument("--marker", default=HOLE, help=f"hole marker (default {HOLE})")
    fill.add_argument("--in-place", action="store_true", help="write the result back to FILE")
    fill.set_defaults(run=cmd_fill)
    listing = sub.add_parser("models", help="list the public checkpoints known to work, with their settings")
    listing.set_defaults(run=cmd_models)
    fitting = sub.add_parser(
        "fit", help="the memory a model needs, from its config.json alone, and whether it fits",
        description="Weights, KV cache and working memory in bytes for MODEL (a checkpoint folder, where "
        "config.json alone is enough; a Hugging Face id, whose config.json alone is fetched; or a catalogue "
        "id), and whether they fit the device. Exit status 1 when they do not fit.")
    fitting.add_argument("model", help="checkpoint folder, Hugging Face id org/name[@revision], catalogue id")
    fitting.add_argument("--quantize", default="none", choices=("none", "int8", "int4"),
                         help="the weights packed as int8 or group-wise int4, as --quantize loads them")
    fitting.add_argument("--context", type=positive, help="prompt tokens before the canvas (default: the "
                         "loader's 2,048 positions, canvas included)")
    fitting.add_argument("--device", help="cpu, cuda, cuda:N or mps (its free memory now), or a capacity "
                         "such as 24GB or 24GiB (default: cuda if present, else cpu)")
    fitting.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"),
                         help="the compute dtype: the weights left wide, int8's scales (default bfloat16)")
    fitting.add_argument("--json", action="store_true",
                         help="print {weights_bytes, cache_bytes, total_bytes, fits}")
    fitting.set_defaults(run=cmd_fit)
    team = sub.add_parser("team-server", help="serve completions to a team over HTTP (Ray Serve: pip install "
                          "'unmask[team]')", description=TEAM_HELP)
    team.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    team.add_argument("--port", type=port, default=8000)
    team.add_argument("--replicas", type=positive, default=1, help="copies of the model, each batching")
    team.add_argument("--max-batch", type=positive, default=16,
                      help="requests denoised together (1: unbatched)")
    team.add_argument("--max-body", type=positive, default=4 << 20, help="request body limit in bytes")
    team.add_argument("--ray-address", help="join this Ray cluster (default: start a local Ray of its own)")
    team.set_defaults(run=cmd_team_server)
    adapt = sub.add_parser("adapt", help="fine-tune the model on a project's files (a new checkpoint folder)")
    adapt.add_argument("path", type=Path, help="the project's folder")
    adapt.add_argument("--minutes", type=float, default=5.0, help="time budget on this CPU (default 5)")
    adapt.add_argument("--out", type=Path, help="the checkpoint folder to write (default: in the user's "
                                                 "cache, keyed by the project)")
    adapt.add_argument("--model", help="the checkpoint to start from (a folder; default: the embedded model)")
    adapt.add_argument("--seed", type=int, default=0)
    adapt.set_defaults(run=cmd_adapt)
    sub.add_parser("train", help="train the embedded model: unmask train --help", add_help=False)
    for command in (serve, complete, fill, team):
        model_arguments(command)
    for command in (complete, fill):
        command.add_argument("--language", help="LSP language id (default: from the file's extension)")
    return p


def positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(text)


def port(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number in 1..65535, got {text!r}")
    return int(text)


def model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="checkpoint folder, or Hugging Face id org/name[@revision] (downloaded "
                   "once into the Hub's cache; `unmask models` lists some); default: the embedded model")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                   help="auto: bfloat16 where the hardware runs it natively (AMX, AVX512-BF16, CUDA)")
    p.add_argument("--quantize", default="auto", choices=("auto", "none", "int8", "int4"),
                   help="int8: linear-layer weights in int8, about half of bf16's memory; int4: group-wise "
                        "int4, about a quarter (docs/engine.md); auto: int8 on a CPU without native bf16 "
                        "(forwards 1.4-1.5x faster there), for models up to 1B weights")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: half the CPUs, at most 4)")
    p.add_argument("--options", help="JSON object in the initializationOptions schema")
    p.add_argument("--remote", metavar="URL", help="a team server (http[s]://host[:port]): the model runs "
                   "there, the rest here; --model, --device, --dtype, --quantize and --threads are its own")
    p.add_argument("--token", help="the team server's token (default: $UNMASK_TEAM_TOKEN)")


def options_from(args: argparse.Namespace) -> Options:
    token = args.token if args.token is not None else os.environ.get("UNMASK_TEAM_TOKEN") or None
    if args.remote is not None and not re.match(REMOTE_URL, args.remote):
        raise SystemExit(f"unmask: --remote must be an http:// or https:// URL such as http://gpu-box:8000, "
                         f"got {args.remote!r}")
    if token is not None and not re.match(TOKEN, token):
        raise SystemExit("unmask: --token (or UNMASK_TEAM_TOKEN) must be visible ASCII without spaces")
    model = {"path": args.model, "device": args.device, "dtype": args.dtype, "threads": args.threads,
             "quantize": args.quantize, "remote": args.remote, "token": token}
    try:
        base = msgspec.convert({"model": model}, Options)
    except msgspec.ValidationError as e:
        raise SystemExit(f"unmask: {e}") from None
    try:
        raw = json.loads(args.options) if args.options else None
    except json.JSONDecodeError as e:
        raise SystemExit(f"unmask: --options is not JSON: {e}") from None
    options, messages = parse(raw, base)
    for message in messages:
        print(f"unmask: {message}", file=sys.stderr)
    return options


def load(opts):
    """models.load; a model the user got wrong (folder, Hub id, device, too big to fit) is one line."""
    from engine import CheckpointError, DeviceUnavailable  # CheckpointError: HubError and DoesNotFit too

    if opts.remote is not None:
        from .remote.remote import RemoteModel

        return RemoteModel(opts.remote, opts.token)
    try:
        return models.load(opts)
    except (CheckpointError, DeviceUnavailable) as e:
        raise SystemExit(f"unmask: {e}") from None


@contextmanager
def remote_errors():
    """A team server that does not answer, or refuses, is one line."""
    from .remote.remote import RemoteError

    try:
        yield
    except RemoteError as e:
        raise SystemExit(f"unmask: {e}") from None


def cmd_adapt(args: argparse.Namespace) -> int:
    from engine.registry import DEFAULT_MODEL

    from .adaptation import cache, job

    if not args.path.is_dir():
        raise SystemExit(f"unmask: {args.path}: not a folder")
    if args.minutes <= 0:
        raise SystemExit(f"unmask: --minutes must be > 0, got {args.minutes}")
    model = Path(args.model) if args.model else DEFAULT_MODEL
    if not (model / "config.json").is_file():
        raise SystemExit(f"unmask: {model}: not a checkpoint folder (no config.json)")
    options = Options()
    out = args.out or cache.folder_for([args.path])  # where the server finds it for this workspace
    request = job.Request([str(args.path.resolve())], sorted(options.source_extensions()),
                          options.memory.max_megabytes * 2**20, str(model), str(out), args.minutes, args.seed)

    def progress(done: float, loss: float) -> None:
        bar = "#" * int(30 * done)
        print(f"\radapting [{bar:<30}] {done:4.0%} loss {loss:.3f}", end="", file=sys.stderr)

    try:
        report = job.adapt_workspace(request, progress)
    except ValueError as e:
        raise SystemExit(f"unmask: {e}") from None
    print(file=sys.stderr)
    print(f"{out}: {report.steps} steps in {report.minutes} min on {report.files} files ({report.tokens} "
          f"tokens); loss on the project's rows {report.loss_before} -> {report.loss_after}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from engine.catalogue import lines

    print("\n".join(lines()))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from engine import CheckpointError, DeviceUnavailable
    from engine.plan import plan

    quantize = None if args.quantize == "none" else args.quantize
    try:
        p = plan(args.model, quantize, args.context, args.device, args.dtype)
    except (CheckpointError, DeviceUnavailable) as e:
        raise SystemExit(f"unmask: {e}") from None
    print(json.dumps(p.json()) if args.json else "\n".join(p.lines()))
    return 1 if p.fits is False else 0


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from .server import server

    server.serve(options_from(args), tcp=(args.host, args.port) if args.tcp else None)
    return 0


def cmd_team_server(args: argparse.Namespace) -> int:
    from .team.launch import Settings, serve_team

    if args.remote is not None:
        raise SystemExit("unmask: team-server runs the model itself (--remote is for serve, complete, fill)")
    options = options_from(args)  # --token (or UNMASK_TEAM_TOKEN): the token every request must bear
    return serve_team(Settings(args.host, args.port, options, args.replicas, args.max_batch,
                               options.model.token, args.max_body, args.ray_address))


def read_document(path: Path, language_id: str | None) -> infill.Document:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SystemExit(f"unmask: cannot read {path}: {e}") from None
    if (language := infill.language_for(language_id, str(path))) is None:
        raise SystemExit(f"unmask: {path}: unsupported language (pass --language)")
    return infill.Document(text, language)


def cmd_complete(args: argparse.Namespace) -> int:
    doc = read_document(args.file, args.language)
    starts = convert.line_starts(doc.text)
    if not 1 <= args.line <= len(starts):
        raise SystemExit(f"unmask: {args.file}: --line must be in 1..{len(starts)}")
    line_end = len(doc.text[starts[args.line - 1] :].split("\n", 1)[0].rstrip("\r"))
    if not 1 <= args.col <= line_end + 1:
        raise SystemExit(f"unmask: {args.file}:{args.line}: --col must be in 1..{line_end + 1}")
    options = options_from(args)
    model, offset, t0 = load(options.model), starts[args.line - 1] + args.col - 1, time.perf_counter()
    with remote_errors():
        c = filler.complete(model, doc, offset, options, invoked=True)
    ms = (time.perf_counter() - t0) * 1000
    if c is None:
        print(f"unmask: no completion at {args.file}:{args.line}:{args.col}", file=sys.stderr)
        return 1
    if isinstance(c, infill.Withheld):
        least = options.completion.min_confidence_invoked
        why = (f"is right with probability {c.probability:.2f}, under completion.minConfidenceInvoked "
               f"({least})" if c.reason == "threshold" else "and every other candidate add a syntax error")
        print(f"unmask: withheld at {args.file}:{args.line}:{args.col}: the best {c.kind} completion (from "
              f"the {c.source}) {why}", file=sys.stderr)
        return 1
    if not args.json:
        print(c.text)
        return 0

    def where(offset: int) -> dict:
        line = convert.position_at(doc.text, starts, offset, "utf-32")
        return {"line": line.line + 1, "col": line.character + 1}

    print(
        json.dumps(
            {
                "start": where(c.start),
                "end": where(c.end),
                "text": c.text,
                "kind": c.kind,
                "confidence": round(c.confidence, 4),
                "probability": None if c.probability is None else round(c.probability, 4),
                "source": c.source,
                "ms": round(ms, 1),
            }
        )
    )
    return 0


def cmd_fill(args: argparse.Namespace) -> int:
    marked = read_document(args.file, args.language)
    if not args.marker or args.marker not in marked.text:
        raise SystemExit(f"unmask: {args.file}: no {args.marker} holes")
    options = options_from(args)
    model = load(options.model)

    def complete(doc: infill.Document, offset: int) -> infill.Completion | None:
        return filler.complete(model, doc, offset, options, invoked=True)

    with remote_errors():
        filled = refactor.fill_holes(marked.text, marked.language, complete, args.marker)
    if filled.empty:
        print(f"unmask: {args.file}: {filled.note}", file=sys.stderr)
    if args.in_place:
        args.file.write_text(filled.text, encoding="utf-8")
    else:
        sys.stdout.write(filled.text)
    return 1 if filled.empty else 0
