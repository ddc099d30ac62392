"""CloudFormation intrinsics in the translated template, resolved against what the harness
provisioned: `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If`/`Conditions`, `Fn::Join`, `Fn::Select`.

Anything else (a resource type the harness does not emulate, an attribute it does not know)
raises `Unresolvable` naming it, so that `serve` fails at start rather than hand a function a
wrong value.
"""

from __future__ import annotations

import re
from typing import Any, Callable


class Unresolvable(Exception):
    pass


class Resolver:
    def __init__(
        self,
        translated: dict[str, Any],
        parameters: dict[str, str],
        pseudo: dict[str, str],
        refs: dict[str, str],
        attributes: dict[tuple[str, str], str],
    ):
        """`parameters`: values of the template's Parameters (defaults and overrides);
        `pseudo`: AWS::Region etc.; `refs`: logical id → Ref value of emulated resources;
        `attributes`: (logical id, attribute) → GetAtt value."""
        self.template = translated
        self.parameters = parameters
        self.pseudo = pseudo
        self.refs = refs
        self.attributes = attributes
        self.conditions = translated.get("Conditions") or {}
        self._condition_cache: dict[str, bool] = {}

    def _type_of(self, logical_id: str) -> str:
        r = (self.template.get("Resources") or {}).get(logical_id)
        return r.get("Type", "?") if isinstance(r, dict) else "?"

    def ref(self, name: str, where: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name in (self.template.get("Resources") or {}):
            raise Unresolvable(f"{where}: Ref {name} ({self._type_of(name)}) names a resource the harness does not emulate")
        raise Unresolvable(f"{where}: Ref {name} names nothing in the template")

    def get_att(self, name: str, attribute: str, where: str) -> str:
        key = (name, attribute)
        if key in self.attributes:
            return self.attributes[key]
        raise Unresolvable(
            f"{where}: GetAtt {name}.{attribute} ({self._type_of(name)}) is not an attribute the harness emulates"
        )

    def condition(self, name: str, where: str) -> bool:
        if name not in self._condition_cache:
            if name not in self.conditions:
                raise Unresolvable(f"{where}: condition {name} is not in Conditions")
            self._condition_cache[name] = bool(self._truth(self.conditions[name], f"condition {name}"))
        return self._condition_cache[name]

    def _truth(self, value: Any, where: str) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Fn::Equals":
                a, b = (self.resolve(x, where) for x in arg)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not self._truth(arg[0], where)
            if fn == "Fn::And":
                return all(self._truth(x, where) for x in arg)
            if fn == "Fn::Or":
                return any(self._truth(x, where) for x in arg)
            if fn == "Condition":
                return self.condition(arg, where)
        raise Unresolvable(f"{where}: cannot evaluate condition {value!r}")

    def _sub(self, text: str, variables: dict[str, Any], where: str) -> str:
        def one(m: re.Match[str]) -> str:
            inner = m.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                return str(self.resolve(variables[inner], where))
            if "." in inner and not inner.startswith("AWS::"):
                name, attribute = inner.split(".", 1)
                return self.get_att(name, attribute, where)
            return self.ref(inner, where)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, value: Any, where: str) -> Any:
        if isinstance(value, (str, int, float, bool)):
            return value
        if isinstance(value, list):
            return [self.resolve(v, where) for v in value]
        if isinstance(value, dict) and len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Ref":
                return self.ref(arg, where)
            if fn == "Fn::GetAtt":
                name, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(name, attribute, where)
            if fn == "Fn::Sub":
                if isinstance(arg, str):
                    return self._sub(arg, {}, where)
                return self._sub(arg[0], arg[1], where)
            if fn == "Fn::If":
                cond, yes, no = arg
                # Only the branch taken is resolved, as CloudFormation does.
                return self.resolve(yes if self.condition(cond, where) else no, where)
            if fn == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.resolve(items, where))
            if fn == "Fn::Select":
                index, items = arg
                return self.resolve(items, where)[int(self.resolve(index, where))]
        raise Unresolvable(f"{where}: cannot resolve {value!r}")


def parameter_values(translated: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    """Each Parameter's default, overridden by `overrides`; a parameter with neither fails."""
    params = translated.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise Unresolvable(f"--parameter {', '.join(unknown)}: not a parameter of the template")
    out: dict[str, str] = {}
    for name, spec in params.items():
        if name in overrides:
            out[name] = overrides[name]
        elif "Default" in spec:
            d = spec["Default"]
            out[name] = ",".join(map(str, d)) if isinstance(d, list) else str(d)
        else:
            raise Unresolvable(f"parameter {name} has no Default: pass --parameter {name}=VALUE")
        allowed = spec.get("AllowedValues")
        if allowed and out[name] not in [str(a) for a in allowed]:
            raise Unresolvable(f"parameter {name}={out[name]!r} is not one of {allowed}")
        if spec.get("Type") == "Number":
            try:
                n = float(out[name])
            except ValueError:
                raise Unresolvable(f"parameter {name}={out[name]!r} is not a Number") from None
            if "MinValue" in spec and n < float(spec["MinValue"]) or "MaxValue" in spec and n > float(spec["MaxValue"]):
                raise Unresolvable(f"parameter {name}={out[name]!r} is outside {spec.get('MinValue')}..{spec.get('MaxValue')}")
    return out


def function_environment(resolver: Resolver, logical_id: str, function: dict[str, Any]) -> dict[str, str]:
    variables = (((function.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {}
    out: dict[str, str] = {}
    for name, value in variables.items():
        v = resolver.resolve(value, f"{logical_id} environment {name}")
        if isinstance(v, bool):
            v = "true" if v else "false"
        out[name] = str(v)
    return out
