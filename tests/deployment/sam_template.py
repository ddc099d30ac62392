"""SAM's own transform of template.yaml, offline, and what the harness reads from its result.

`translate(template_path)` runs `samtranslator`'s transform as `sam deploy` has CloudFormation
run it (region us-east-1, each function's CodeUri an `s3://quayside-harness/<CodeUri>` URI, a
managed-policy loader that makes no AWS call) and returns the CloudFormation template as a dict.
Other tests import `translate`: keep its name and signature.
"""

from __future__ import annotations

import copy
import os
import threading
from pathlib import Path
from typing import Any

HARNESS_BUCKET = "quayside-harness"
REGION = "us-east-1"

# AWS managed policies SAM may name by their short name (none in template.yaml today; SAM adds
# AWSLambdaBasicExecutionRole by ARN itself). A name missing here fails the transform loudly.
_MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSLambdaDynamoDBExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}

_lock = threading.Lock()


class OfflinePolicyLoader:
    """A ManagedPolicyLoader that needs no IAM call."""

    def load(self) -> dict[str, str]:
        return dict(_MANAGED_POLICIES)


def load_yaml(template_path: str | os.PathLike[str]) -> dict[str, Any]:
    """template.yaml as a dict, short-form intrinsics (`!Ref`, `!GetAtt A.B`) in their long form."""
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(Path(template_path).read_text())


def _is_function(resource: Any) -> bool:
    return isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function"


def translate(template_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The CloudFormation template SAM's transform makes of `template_path`."""
    from samtranslator.translator import arn_generator
    from samtranslator.translator.transform import transform

    source = load_yaml(template_path)
    fragment = copy.deepcopy(source)
    for resource in (fragment.get("Resources") or {}).values():
        if not _is_function(resource):
            continue
        props = resource.setdefault("Properties", {})
        code_uri = props.get("CodeUri")
        if isinstance(code_uri, str) and not code_uri.startswith("s3://"):
            props["CodeUri"] = f"s3://{HARNESS_BUCKET}/{code_uri.strip('/')}"

    # samtranslator asks boto3 for the region (to pick the partition); give it one without
    # touching anything that lasts.
    with _lock:
        saved = os.environ.get("AWS_DEFAULT_REGION")
        os.environ["AWS_DEFAULT_REGION"] = REGION
        try:
            for cached in ("_get_region_from_session", "_region_to_partition"):
                fn = getattr(arn_generator, cached, None)
                if fn is not None and hasattr(fn, "cache_clear"):
                    fn.cache_clear()
            return transform(fragment, {}, OfflinePolicyLoader())
        finally:
            if saved is None:
                os.environ.pop("AWS_DEFAULT_REGION", None)
            else:
                os.environ["AWS_DEFAULT_REGION"] = saved


def function_builds(template_path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """Each function's logical id → {"crate_dir", "binary"}, from the template as written.

    `crate_dir` is the CodeUri (relative to the template's folder), `binary` the
    `Metadata.BuildProperties.Binary` cargo-lambda builds (default: the crate's package name,
    which the caller finds in `crate_dir/Cargo.toml`). The translated template keeps the
    logical ids of `AWS::Lambda::Function` resources equal to these.
    """
    source = load_yaml(template_path)
    globals_fn = ((source.get("Globals") or {}).get("Function") or {})
    out: dict[str, dict[str, str]] = {}
    for logical_id, resource in (source.get("Resources") or {}).items():
        if not _is_function(resource):
            continue
        props = resource.get("Properties") or {}
        code_uri = props.get("CodeUri", globals_fn.get("CodeUri"))
        if not isinstance(code_uri, str):
            raise ValueError(f"{logical_id}: CodeUri is not a local folder: {code_uri!r}")
        meta = resource.get("Metadata") or {}
        binary = (meta.get("BuildProperties") or {}).get("Binary")
        out[logical_id] = {
            "crate_dir": code_uri.strip("/"),
            "binary": binary or "",
            "build_method": meta.get("BuildMethod", ""),
        }
    return out


def lambda_functions(translated: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The translated template's `AWS::Lambda::Function` resources, by logical id."""
    return {
        k: v
        for k, v in (translated.get("Resources") or {}).items()
        if isinstance(v, dict) and v.get("Type") == "AWS::Lambda::Function"
    }


if __name__ == "__main__":  # a quick look: python tests/deployment/sam_template.py template.yaml
    import json
    import sys

    print(json.dumps(translate(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"), indent=1))
