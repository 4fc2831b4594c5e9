"""`unmask team-server`: check what the user can get wrong (port, device, model folder) before Ray starts,
start a Ray of its own (or join --ray-address), Serve's HTTP proxy on host:port, deploy the replicas, wait
until every replica has its model, print one line, and shut Ray down on SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from .. import models
from ..options import Options

APP = "unmask"
MAX_EXTRA = 1 << 20  # bytes of extra / input_extra text per request (llama.vim's ring is about 40 KB)
READY_POLL_S = 0.5


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    options: Options
    replicas: int
    max_batch: int
    token: str | None
    max_body: int
    ray_address: str | None


class LaunchFailed(Exception):
    """One line for the user, exit status 1."""


def serve_team(s: Settings) -> int:
    if s.ray_address is None:
        # a Ray of its own listens on the loopback address only: Ray otherwise resolves 127.0.0.1 to the
        # machine's address for its GCS and raylet (ray/_private/services.py get_node_ip_address). Read when
        # ray is first imported, and inherited by its processes.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray  # noqa: F401  (before anything starts: a missing extra is one line)
        from ray import serve  # noqa: F401
    except ImportError:
        print("unmask: team-server needs Ray Serve: pip install 'unmask[team]'", file=sys.stderr)
        return 1
    stop = threading.Event()
    try:
        model, name = check(s)
        start(s, model, name, stop)
    except LaunchFailed as e:
        print(f"unmask: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the handlers are in place
        return 130
    except Exception as e:  # Ray or Serve could not start: its first line, not its traceback
        print(f"unmask: team-server could not start: {first_line(e)}", file=sys.stderr)
        return 1
    finally:
        shutdown(own_ray=s.ray_address is None)
    return 0


def first_line(e: Exception) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def check(s: Settings):
    """The model options the replicas load (a Hub id resolved to its folder: downloaded here, once) and the
    model's name; LaunchFailed for a port in use, a device this machine lacks or a folder that is no
    checkpoint."""
    from engine import CheckpointError, DeviceUnavailable
    from engine.formats import open_checkpoint
    from engine.hub import repo_id_of
    from engine.registry import DEFAULT_MODEL, check_device

    if s.ray_address is None:  # on a cluster, Serve's proxies may be elsewhere, or already listening
        check_port(s.host, s.port)
    opts = s.options.model
    try:
        check_device(opts.device)
        opts = models.fetch(opts)
        open_checkpoint(DEFAULT_MODEL if opts.path is None else Path(opts.path))  # a folder or GGUF file
    except (CheckpointError, DeviceUnavailable) as e:
        raise LaunchFailed(str(e)) from None
    name = "unmask-embedded" if opts.path is None else repo_id_of(opts.path) or str(opts.path)
    return msgspec.structs.replace(opts, remote=None, token=None), name


def check_port(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise LaunchFailed(f"--host {host!r}: {e.strerror}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            raise LaunchFailed(f"cannot listen on {host}:{port}: {e.strerror}") from None


def start(s: Settings, model, name: str, stop: threading.Event) -> None:
    import ray
    from ray import serve

    from .app import Config, TeamServer

    logging.getLogger("ray").setLevel(logging.WARNING)
    cuda = model.device.startswith("cuda")
    if s.ray_address:
        ray.init(address=s.ray_address, logging_level=logging.WARNING)
    else:  # a Ray of its own, reachable only from this machine
        ray.init(address="local", include_dashboard=False, num_cpus=s.replicas + 1,
                 num_gpus=local_gpus() if cuda else 0, _node_ip_address="127.0.0.1",
                 logging_level=logging.WARNING)
    gpus = int(ray.cluster_resources().get("GPU", 0)) if cuda else 0
    for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which installs its own SIGTERM handler
        signal.signal(sig, lambda *_: stop.set())
    quiet = {"log_level": "WARNING", "enable_access_log": False}
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # "Started Serve", "Application ... is ready"
    serve.start(http_options={"host": s.host, "port": s.port}, logging_config=quiet)
    options = s.options
    config = Config(replica_model(model, s.replicas, gpus), name,
                    models.sampler_config(options.sampler, model.path), models.memory_config(options.memory),
                    s.max_batch, s.replicas, s.token, s.max_body, MAX_EXTRA)
    deployment = serve.deployment(
        TeamServer, name=APP, num_replicas=s.replicas,
        # enough requests in each replica for its Batcher to fill a batch; the rest wait in its queue
        max_ongoing_requests=max(64, 8 * s.max_batch),
        ray_actor_options=actor_resources(model.device, s.replicas, gpus),
        graceful_shutdown_timeout_s=5, logging_config=quiet,
    )
    handle = serve.run(deployment.bind(config), name=APP, route_prefix="/")
    wait_ready(handle, s.replicas, stop)
    if stop.is_set():
        return
    where = f"http://{s.host}:{s.port}"
    extra = ", token required" if s.token else ""
    print(f"unmask team-server: ready at {where} ({name} on {model.device}, {s.replicas} replica"
          f"{'s' if s.replicas != 1 else ''}, max batch {s.max_batch}{extra})", flush=True)
    while not stop.wait(1.0):
        pass


def wait_ready(handle, replicas: int, stop: threading.Event) -> None:
    """Until every replica has loaded its model; LaunchFailed with the first replica's load error."""
    ready: set[str] = set()
    while not stop.is_set():
        # several calls at once so that the router reaches every replica
        answers = [r.result() for r in [handle.readiness.remote() for _ in range(2 * replicas)]]
        for a in answers:
            if a["state"] == "failed":
                raise LaunchFailed(f"the model failed to load: {a['error']}")
            if a["state"] == "ready":
                ready.add(a["replica"])
        if len(ready) >= replicas:
            return
        time.sleep(READY_POLL_S)


def replica_model(model, replicas: int, gpus: int):
    """The model options each replica loads: Ray gives a replica its own GPU(s), which it sees as cuda:0;
    CPU threads (0: the default) are shared out among replicas on one machine."""
    if model.device.startswith("cuda"):
        return msgspec.structs.replace(model, device="cuda")
    if model.device == "cpu" and model.threads == 0:
        return msgspec.structs.replace(model, threads=max(1, models.default_threads() // replicas))
    return model


def actor_resources(device: str, replicas: int, gpus: int) -> dict:
    if device.startswith("cuda"):
        return {"num_cpus": 1, "num_gpus": 1 if replicas <= gpus else gpus / replicas}
    return {"num_cpus": 1}


def local_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def shutdown(own_ray: bool) -> None:
    """Ray down, with every process it started (Serve's controller, proxy and replicas die with their
    raylet; serve.shutdown() first only made Ray log the controller's killed tasks); on a cluster this
    server joined, only its own application."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        return
    try:
        if not own_ray:
            serve.delete(APP)
    finally:
        ray.shutdown()
