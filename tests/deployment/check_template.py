"""Would CloudFormation accept the template `sam deploy` sends it? Two checks, offline.

    .venv/bin/python tests/deployment/check_template.py [TEMPLATE]   # default: template.yaml

1. SAM's own transform (`translate` from sam_template.py), then the graph of references
   between the translated resources, as CloudFormation orders them: `Ref` to a resource,
   `Fn::GetAtt` (list or "X.Attr"), `Fn::Sub` (`${X}`, `${X.Attr}`, string or [string, map]
   form), `DependsOn` (string or list), both branches of every `Fn::If`. Every strongly
   connected component with a cycle (Tarjan) is reported with concrete cycles, and the
   reference that makes each edge. `sam validate --lint` and cfn-lint on template.yaml do not
   see a cycle that only SAM's generated resources close (aws/serverless-application-model#386:
   an HttpApi's generated OpenAPI body names each function's ARN).
2. cfn-lint, the version pinned in cfn-lint-requirements.txt, installed by tests/run in
   .venv/pinned/cfn-lint, on the translated template written out as JSON.

Exit status: 0 the template passes; 1 it does not (cycle, cfn-lint finding, or SAM refuses
it); 2 the check could not run (a tool missing, a bad argument). tests/template_lint.rs runs
it on template.yaml and on fixtures/realm-cycle.yaml (the cycle issue 10 is about).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from sam_template import REGION, translate  # noqa: E402

PIN_FILE = HERE / "cfn-lint-requirements.txt"
PINNED_CFN_LINT = ROOT / ".venv" / "pinned" / "cfn-lint" / "bin" / "cfn-lint"

# cfn-lint findings that do not fail the check, and why. cfn-lint's exit status counts
# errors, warnings and (only when asked for) informational findings; this check fails on every
# error and every warning, as tests/template_lint.rs does for template.yaml itself.
# Informational rules stay off, as in cfn-lint's default: they are advice, not what
# CloudFormation refuses (on today's translation: I3011, set DeletionPolicy on the log group).
# No warning is ignored: today's translation has none. If SAM's generated resources ever raise
# one we cannot change from template.yaml, name it here with its reason, never an E rule:
# E3004 is the circular dependency this check exists for.
IGNORED_RULES: dict[str, str] = {}
FAILING_LEVELS = ("Error", "Warning")

SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Reference:
    """One reference from a resource to another: the edge source -> target."""

    source: str
    target: str
    how: str  # e.g. "Fn::Sub ${ApiVersionFunction.Arn}"
    where: str  # e.g. "Properties.Body.paths./v2/.get.x-amazon-apigateway-integration.uri"


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _sub_references(
    text: Any, defined: set[str], resources: dict[str, Any], where: str
) -> Iterator[tuple[str, str, str]]:
    """The resources a Fn::Sub string names: `${X}` and `${X.Attr}`, not `${!literal}`,
    not a name its variable map defines, not a parameter or `AWS::` pseudo-parameter."""
    if not isinstance(text, str):
        return
    for match in SUB_VARIABLE.finditer(text):
        name = match.group(1).strip()
        if not name or name.startswith("!") or name in defined:
            continue
        target = name.split(".", 1)[0]
        if target in resources:
            yield target, f"Fn::Sub ${{{name}}}", where


def _references(
    value: Any, resources: dict[str, Any], where: str
) -> Iterator[tuple[str, str, str]]:
    """(target, how, where) for every reference to a resource in `value`, Fn::If's branches
    included (both: which one a deploy takes depends on its parameters)."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _references(item, resources, _join(where, i))
        return
    if not isinstance(value, dict):
        return
    if len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref":
            if isinstance(arg, str) and arg in resources:
                yield arg, f"Ref {arg}", where
            return
        if key == "Fn::GetAtt":
            if isinstance(arg, list) and arg and isinstance(arg[0], str):
                if arg[0] in resources:
                    attr = arg[1] if len(arg) > 1 and isinstance(arg[1], str) else "…"
                    yield arg[0], f"Fn::GetAtt {arg[0]}.{attr}", where
                # The attribute name may itself be a Ref (to a parameter, or a resource).
                yield from _references(arg[1:], resources, _join(where, "Fn::GetAtt"))
            elif isinstance(arg, str):
                target = arg.split(".", 1)[0]
                if target in resources:
                    yield target, f"Fn::GetAtt {arg}", where
            return
        if key == "Fn::Sub":
            here = _join(where, "Fn::Sub")
            if isinstance(arg, str):
                yield from _sub_references(arg, set(), resources, where)
            elif isinstance(arg, list) and arg:
                variables = arg[1] if len(arg) > 1 and isinstance(arg[1], dict) else {}
                yield from _sub_references(arg[0], set(variables), resources, where)
                for name, item in variables.items():
                    yield from _references(item, resources, _join(here, name))
            return
    for key, item in value.items():
        yield from _references(item, resources, _join(where, key))


def reference_graph(template: dict[str, Any]) -> dict[str, dict[str, list[Reference]]]:
    """source -> target -> the references that make source depend on target.

    Nodes are the resources only: a Ref to a parameter or pseudo-parameter is no dependency,
    and Outputs are not resources (they are evaluated once every resource exists). Every part
    of a resource counts except Type and Condition (names, not references): Properties,
    DependsOn, UpdatePolicy, and Metadata too — CloudFormation orders creation by a Ref in
    Metadata as well (a documented workaround for a conditional DependsOn uses exactly that:
    cloudonaut.io, "Optional DependsOn with CloudFormation: Metadata to the rescue"), and
    cfn-lint's E3004 graph counts it.
    """
    resources = template.get("Resources") or {}
    graph: dict[str, dict[str, list[Reference]]] = {name: {} for name in resources}

    def add(source: str, target: str, how: str, where: str) -> None:
        graph[source].setdefault(target, []).append(Reference(source, target, how, where))

    for name, resource in resources.items():
        if not isinstance(resource, dict):
            continue
        depends_on = resource.get("DependsOn", [])
        for target in [depends_on] if isinstance(depends_on, str) else depends_on or []:
            if isinstance(target, str) and target in resources:
                add(name, target, f"DependsOn {target}", "DependsOn")
        for key, value in resource.items():
            if key in ("Type", "Condition", "DependsOn"):
                continue
            for target, how, where in _references(value, resources, key):
                add(name, target, how, where)
    return graph


def strongly_connected_components(graph: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit), in the graph's node order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in graph:
        if root in index:
            continue
        visit(root)
        work = [(root, iter(graph[root]))]
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    visit(succ)
                    work.append((succ, iter(graph[succ])))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def shortest_cycle_through(
    start: str, members: set[str], graph: dict[str, dict[str, Any]]
) -> list[str]:
    """start -> … -> start, fewest edges, inside one strongly connected component."""
    parent: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(graph[node]):
            if succ not in members:
                continue
            if succ == start:
                path = [node]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])
                return list(reversed(path)) + [start]
            if succ not in parent:
                parent[succ] = node
                queue.append(succ)
    raise AssertionError(f"{start} is on no cycle of its component")


def cycles(graph: dict[str, dict[str, list[Reference]]]) -> list[tuple[list[str], list[list[str]]]]:
    """Each component with a cycle: its members (its most connected resource first) and
    concrete cycles that between them pass through every member."""
    found = []
    for component in strongly_connected_components(graph):
        members = set(component)
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue  # a resource on its own, no self-reference

        def degree(node: str) -> int:
            out = sum(1 for t in graph[node] if t in members)
            return out + sum(1 for s in members if node in graph[s])

        ordered = sorted(component, key=lambda n: (-degree(n), n))
        hub = ordered[0]
        covered: set[str] = set()
        paths = []
        for member in ordered:
            if member in covered:
                continue
            path = shortest_cycle_through(member, members, graph)
            if hub in path:  # read from the hub: "RegistryApi -> X -> RegistryApi"
                at = path.index(hub)
                path = path[at:-1] + path[:at] + [hub]
            paths.append(path)
            covered.update(path)
        found.append((ordered, paths))
    return found


def report_cycles(graph: dict[str, dict[str, list[Reference]]]) -> int:
    """Prints every cycle; returns how many components have one."""
    found = cycles(graph)
    for number, (members, paths) in enumerate(found, 1):
        what = (
            f"{len(members)} resources depend on each other: {', '.join(members)}"
            if len(members) > 1
            else f"{members[0]} depends on itself"
        )
        print(f"CIRCULAR DEPENDENCY {number} of {len(found)}: {what}")
        for path in paths:
            print(f"  cycle: {' -> '.join(path)}")
            for source, target in zip(path, path[1:]):
                refs = graph[source][target]
                more = f" (and {len(refs) - 1} more)" if len(refs) > 1 else ""
                print(f"    {source} -> {target}: {refs[0].how} at {refs[0].where}{more}")
    return len(found)


def pinned_version() -> str:
    for line in PIN_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("cfn-lint=="):
            return line.removeprefix("cfn-lint==")
    raise SystemExit(f"check_template: no cfn-lint==VERSION line in {PIN_FILE}")


def run_cfn_lint(cfn_lint: Path, translated: dict[str, Any]) -> int | None:
    """cfn-lint's failing findings on the translated template; None if it could not run."""
    want = pinned_version()
    try:
        version = subprocess.run(
            [str(cfn_lint), "--version"], capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"check_template: cannot run {cfn_lint} ({e}): tests/run installs it", file=sys.stderr)
        return None
    if version[-1:] != [want]:
        print(
            f"check_template: {cfn_lint} is {' '.join(version)}, the pin is {want} "
            f"({PIN_FILE.name}): tests/run installs it",
            file=sys.stderr,
        )
        return None

    fd, path = tempfile.mkstemp(prefix="translated-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(translated, out, indent=1)
        run = subprocess.run(
            [str(cfn_lint), "--format", "json", "--regions", REGION, "--", path],
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(path)
    try:
        findings = json.loads(run.stdout)
    except json.JSONDecodeError:
        findings = None
    # Exit status bits: 2 error, 4 warning, 8 informational; anything else means it failed.
    if findings is None or run.returncode & ~(2 | 4 | 8):
        print(f"check_template: cfn-lint failed (exit {run.returncode}):", file=sys.stderr)
        print(run.stdout + run.stderr, file=sys.stderr)
        return None

    failing = 0
    print(f"cfn-lint {want} on the translated template:")
    for finding in findings:
        rule = finding.get("Rule", {}).get("Id", "?")
        level = finding.get("Level", "?")
        where = "/".join(str(p) for p in finding.get("Location", {}).get("Path") or [])
        line = f"{rule} {finding.get('Message', '').strip()} [{where}]"
        if rule in IGNORED_RULES:
            print(f"  ignored: {line} ({IGNORED_RULES[rule]})")
        elif level in FAILING_LEVELS:
            print(f"  {level.upper()}: {line}")
            failing += 1
        else:
            print(f"  {level.lower()}: {line}")
    if not findings:
        print("  no findings")
    return failing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", default=str(ROOT / "template.yaml"))
    parser.add_argument(
        "--cfn-lint", type=Path, default=PINNED_CFN_LINT, help="the pinned cfn-lint to run"
    )
    parser.add_argument(
        "--write-translated", type=Path, help="also write SAM's translation here (JSON)"
    )
    args = parser.parse_args()

    try:
        translated = translate(args.template)
    except (OSError, ImportError) as e:  # no template, or no samtranslator (.venv's python?)
        print(f"check_template: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # SAM refuses the template: so would `sam deploy`.
        causes = getattr(e, "causes", None) or [e]
        print(f"SAM's transform refuses {args.template}:")
        for cause in causes:
            print(f"  {getattr(cause, 'message', cause)}")
        return 1
    if args.write_translated:
        args.write_translated.write_text(json.dumps(translated, indent=1))

    graph = reference_graph(translated)
    edges = sum(len(targets) for targets in graph.values())
    print(
        f"{args.template}: SAM's transform makes {len(graph)} resources, "
        f"{edges} dependencies between them"
    )
    cyclic = report_cycles(graph)
    if not cyclic:
        print("no circular dependency")

    lint = run_cfn_lint(args.cfn_lint, translated)
    if lint is None:
        return 2
    if cyclic or lint:
        print(f"FAILED: {cyclic} circular dependencies, {lint} cfn-lint findings")
        return 1
    print("OK: no circular dependency, no cfn-lint finding")
    return 0


if __name__ == "__main__":
    sys.exit(main())
