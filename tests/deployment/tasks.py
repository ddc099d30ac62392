"""The template's ECS services (the upload service), run as the deployment runs them.

Each `AWS::ECS::Service` whose Condition holds becomes DesiredCount processes of the
project's binary for its container (`upload-service`, built by `cargo build -p registry-local
--features aws`), each with the container's Environment as the template resolves it and
QUAYSIDE_ADDR on a free local port standing for the container port. In front of them, the
service's load balancer (the listener that forwards to its target group): a TCP proxy that
hands each connection to the next task in turn, whose address stands for the balancer's
DNSName, so that what the template builds from it (start-upload's
QUAYSIDE_UPLOAD_SERVICE_URL) points here. Anything else of ECS or ELB is not emulated: the
image (the binary runs instead), roles, networking, health checks.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from resolve import Resolver, Unresolvable

# The container name → the binary that runs for it.
BINARIES = {"upload-service": "upload-service"}


@dataclass
class ServiceSpec:
    logical_id: str
    binary: str
    environment: dict[str, str]
    container_port: int
    desired: int
    load_balancer: str  # logical id of the AWS::ElasticLoadBalancingV2::LoadBalancer
    tasks: list[Any] = field(default_factory=list)


def _ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def ecs_services(translated: dict[str, Any], resolver: Resolver) -> list[tuple[str, dict[str, Any]]]:
    """(logical id, resource) of each ECS service the stack would create."""
    out = []
    for lid, r in (translated.get("Resources") or {}).items():
        if r.get("Type") != "AWS::ECS::Service":
            continue
        cond = r.get("Condition")
        if cond and not resolver.condition(cond, lid):
            continue
        out.append((lid, r))
    return out


def load_balancer_of(translated: dict[str, Any], target_group: str) -> str:
    """The load balancer whose listener forwards to `target_group`."""
    for lid, r in (translated.get("Resources") or {}).items():
        if r.get("Type") != "AWS::ElasticLoadBalancingV2::Listener":
            continue
        p = r.get("Properties") or {}
        for action in p.get("DefaultActions") or []:
            if action.get("Type") == "forward" and _ref(action.get("TargetGroupArn")) == target_group:
                lb = _ref(p.get("LoadBalancerArn"))
                if lb:
                    return lb
    raise Unresolvable(f"no listener forwards to target group {target_group}")


def service_specs(translated: dict[str, Any], resolver: Resolver) -> list[ServiceSpec]:
    resources = translated.get("Resources") or {}
    specs = []
    for lid, r in ecs_services(translated, resolver):
        p = r.get("Properties") or {}
        task_def = _ref(p.get("TaskDefinition"))
        if task_def not in resources:
            raise Unresolvable(f"{lid}: TaskDefinition {p.get('TaskDefinition')!r} is not a resource of the template")
        containers = (resources[task_def].get("Properties") or {}).get("ContainerDefinitions") or []
        balanced = p.get("LoadBalancers") or []
        if len(containers) != 1 or len(balanced) != 1:
            raise Unresolvable(f"{lid}: one container behind one load balancer is emulated, not {len(containers)} and {len(balanced)}")
        container = containers[0]
        name = container.get("Name")
        if name not in BINARIES or balanced[0].get("ContainerName") != name:
            raise Unresolvable(f"{lid}: container {name!r} is not one the harness runs ({', '.join(BINARIES)})")
        env = {}
        for var in container.get("Environment") or []:
            env[var["Name"]] = str(resolver.resolve(var["Value"], f"{task_def} environment {var['Name']}"))
        port = int(balanced[0].get("ContainerPort"))
        target_group = _ref(balanced[0].get("TargetGroupArn"))
        if not target_group:
            raise Unresolvable(f"{lid}: LoadBalancers[0].TargetGroupArn is not a Ref")
        specs.append(ServiceSpec(
            logical_id=lid,
            binary=BINARIES[name],
            environment=env,
            container_port=port,
            desired=max(1, int(resolver.resolve(p.get("DesiredCount", 1), f"{lid} DesiredCount"))),
            load_balancer=load_balancer_of(translated, target_group),
        ))
    return specs


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_listening(port: int, alive: Callable[[], bool], log_path: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if not alive():
                raise Unresolvable(f"the task exited at start: {log_path}")
            if time.monotonic() > deadline:
                raise Unresolvable(f"the task did not listen on {port} within {timeout_s:.0f} s: {log_path}")
            time.sleep(0.05)


class LoadBalancer:
    """A TCP proxy on a free local port: each connection goes to the next backend in turn."""

    def __init__(self, host: str = "127.0.0.1"):
        self.server = socket.create_server((host, 0))
        self.port = self.server.getsockname()[1]
        self.backends: list[int] = []
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._accept, daemon=True, name="load-balancer").start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self.server.close()
        except OSError:
            pass

    def _pick(self) -> int:
        with self._lock:
            port = self.backends[self._next % len(self.backends)]
            self._next += 1
            return port

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self._pick()))
        except OSError:
            # No healthy target: the ALB answers 503.
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(256 * 1024)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
