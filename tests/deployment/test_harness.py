"""The deployment harness's own logic: routes, events, response mapping, limits, intrinsics,
filter patterns, checkpoints, and the runtime API with a fake function (no AWS, no cargo).

    .venv/bin/python -m unittest discover tests/deployment
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import apigw  # noqa: E402
from apigw import Route, Router, build_event, map_response  # noqa: E402
from resolve import Resolver, Unresolvable, function_environment, parameter_values  # noqa: E402
from runtime import FunctionSpec, Pool  # noqa: E402
from sam_template import function_builds, lambda_functions, translate  # noqa: E402
from streams import Checkpoints, EventSourceMapping, failed_from, filters_match, lambda_record, pattern_matches  # noqa: E402

ROOT = HERE.parent.parent
TEMPLATE = ROOT / "template.yaml"
NOTIFY_PATTERN = json.loads('{"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": [{"prefix": "EVENT#"}]}}}}')


def route(method: str, path: str, fn: str = "F") -> Route:
    return Route(method=method, path=path, function=fn)


class TemplateTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.translated = translate(TEMPLATE)

    def test_every_route_names_a_built_function(self) -> None:
        routes = apigw.routes_from_template(self.translated)
        builds = function_builds(TEMPLATE)
        self.assertTrue(routes)
        for r in routes:
            self.assertIn(r.function, builds)
            self.assertEqual(r.payload_version, "2.0")
        self.assertIn(("GET", "/v2/"), {(r.method, r.path) for r in routes})

    def test_builds_come_from_code_uri_and_binary(self) -> None:
        builds = function_builds(TEMPLATE)
        for lid, b in builds.items():
            self.assertTrue((ROOT / b["crate_dir"] / "Cargo.toml").exists(), lid)
        self.assertEqual(set(builds), set(lambda_functions(self.translated)))

    def test_environment_resolves_against_emulated_resources(self) -> None:
        params = parameter_values(self.translated, {"AuthRealm": "http://h:1/v2/auth"})
        refs = {"Table": "t", "BlobBucket": "b", "EventTopic": "arn:topic", "SigningKey": "kid"}
        atts = {("SigningKey", "Arn"): "arn:key", ("Table", "StreamArn"): "arn:stream"}
        r = Resolver(self.translated, params, {"AWS::Region": "us-east-1"}, refs, atts)
        fn = lambda_functions(self.translated)["FetchManifestFunction"]
        env = function_environment(r, "FetchManifestFunction", fn)
        self.assertEqual(env["QUAYSIDE_TABLE"], "t")
        self.assertEqual(env["QUAYSIDE_KMS_KEY"], "arn:key")
        self.assertEqual(env["QUAYSIDE_TOPIC_ARN"], "arn:topic")
        self.assertEqual(env["QUAYSIDE_AUTH_REALM"], "http://h:1/v2/auth")

    def test_unemulated_reference_fails_naming_it(self) -> None:
        t = {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}, "Parameters": {}}
        r = Resolver(t, {}, {}, {}, {})
        with self.assertRaises(Unresolvable) as e:
            r.resolve({"Fn::Sub": "x-${Q}"}, "F environment V")
        self.assertIn("Q (AWS::SQS::Queue)", str(e.exception))
        with self.assertRaises(Unresolvable):
            r.resolve({"Fn::GetAtt": ["Q", "Arn"]}, "F")

    def test_if_resolves_only_the_branch_taken(self) -> None:
        t = {
            "Resources": {"Api": {"Type": "AWS::ApiGatewayV2::Api"}},
            "Conditions": {"Empty": {"Fn::Equals": [{"Ref": "P"}, ""]}},
        }
        value = {"Fn::If": ["Empty", {"Fn::Sub": "https://${Api}/x"}, {"Ref": "P"}]}
        self.assertEqual(Resolver(t, {"P": "set"}, {}, {}, {}).resolve(value, "w"), "set")
        with self.assertRaises(Unresolvable):
            Resolver(t, {"P": ""}, {}, {}, {}).resolve(value, "w")

    def test_parameters_defaults_overrides_and_bounds(self) -> None:
        params = parameter_values(self.translated, {"LogLevel": "debug"})
        self.assertEqual(params["LogLevel"], "debug")
        self.assertEqual(params["PresignSeconds"], "900")
        with self.assertRaises(Unresolvable):
            parameter_values(self.translated, {"Nope": "1"})
        with self.assertRaises(Unresolvable):
            parameter_values(self.translated, {"PresignSeconds": "0"})


class RoutingTests(unittest.TestCase):
    def setUp(self) -> None:
        self.router = Router([
            route("GET", "/v2/", "Version"),
            route("GET", "/v2/_catalog", "Catalog"),
            route("GET", "/v2/{name1}/{name2}/blobs/{digest}", "FetchBlob"),
            route("POST", "/v2/{name1}/{name2}/blobs/uploads/", "Start"),
            route("GET", "/v2/{name1}/{name2}/blobs/uploads/{uuid}", "Status"),
            route("GET", "/v2/{name1}/{name2}/manifests/{reference}", "Manifest"),
            route("ANY", "/v2/{proxy+}", "Catchall"),
        ])

    def fn(self, method: str, path: str) -> str | None:
        m = self.router.match(method, path)
        return m[0].function if m else None

    def test_literal_segments_beat_parameters(self) -> None:
        self.assertEqual(self.fn("GET", "/v2/_catalog"), "Catalog")
        self.assertEqual(self.fn("GET", "/v2/a/b/blobs/uploads/u1"), "Status")
        self.assertEqual(self.fn("GET", "/v2/a/b/blobs/sha256:1"), "FetchBlob")

    def test_trailing_slash_is_ignored_both_ways(self) -> None:
        self.assertEqual(self.fn("GET", "/v2/"), "Version")
        self.assertEqual(self.fn("GET", "/v2"), "Version")
        self.assertEqual(self.fn("POST", "/v2/a/b/blobs/uploads/"), "Start")
        self.assertEqual(self.fn("POST", "/v2/a/b/blobs/uploads"), "Start")
        self.assertEqual(self.router.match("POST", "/v2/a/b/blobs/uploads/")[0].key,
                         "POST /v2/{name1}/{name2}/blobs/uploads")

    def test_greedy_and_any_come_last(self) -> None:
        self.assertEqual(self.fn("DELETE", "/v2/a/b/manifests/x"), "Catchall")
        self.assertEqual(self.fn("GET", "/v2/a/b/c/d/e/f"), "Catchall")

    def test_no_route_is_404_not_found(self) -> None:
        self.assertIsNone(Router([route("GET", "/v2/")]).match("GET", "/v3/x"))
        self.assertIsNone(Router([route("GET", "/v2/")]).match("POST", "/v2/"))
        status, headers, body = apigw.gateway_error(404)
        self.assertEqual((status, json.loads(body)), (404, {"message": "Not Found"}))

    def test_empty_segment_does_not_match_a_parameter(self) -> None:
        r = Router([route("GET", "/v2/{name1}/{name2}/manifests/{reference}")])
        self.assertIsNone(r.match("GET", "/v2//b/manifests/x"))

    def test_parameters_are_decoded_after_splitting(self) -> None:
        _, params = self.router.match("GET", "/v2/a%2Fb/c/manifests/t%3Ax")
        self.assertEqual(params, {"name1": "a/b", "name2": "c", "reference": "t:x"})


class EventTests(unittest.TestCase):
    def event(self, **kw):
        args = dict(
            method="PUT", raw_path="/v2/a/b/manifests/v1", raw_query="x=1&x=2&y=%20z",
            headers=[("Host", "127.0.0.1:5000"), ("Accept", "a"), ("Accept", "b"),
                     ("Cookie", "c1=1; c2=2"), ("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
            body=b'{"k":1}', route=route("PUT", "/v2/{name1}/{name2}/manifests/{reference}"),
            path_parameters={"name1": "a", "name2": "b", "reference": "v1"},
            source_ip="127.0.0.1", server_port=5000, request_id="rid", now=1_700_000_000.0,
        )
        args.update(kw)
        return build_event(**args)

    def test_payload_2_0_shape(self) -> None:
        e = self.event()
        self.assertEqual(e["version"], "2.0")
        self.assertEqual(e["routeKey"], "PUT /v2/{name1}/{name2}/manifests/{reference}")
        self.assertEqual(e["rawPath"], "/v2/a/b/manifests/v1")
        self.assertEqual(e["rawQueryString"], "x=1&x=2&y=%20z")
        self.assertEqual(e["queryStringParameters"], {"x": "1,2", "y": " z"})
        self.assertEqual(e["headers"]["accept"], "a,b")
        self.assertNotIn("cookie", e["headers"])
        self.assertEqual(e["cookies"], ["c1=1", "c2=2"])
        self.assertEqual(e["pathParameters"], {"name1": "a", "name2": "b", "reference": "v1"})
        ctx = e["requestContext"]
        self.assertEqual(ctx["domainName"], "127.0.0.1:5000")
        self.assertEqual(ctx["stage"], "$default")
        self.assertEqual(ctx["http"], {"method": "PUT", "path": "/v2/a/b/manifests/v1", "protocol": "HTTP/1.1",
                                       "sourceIp": "127.0.0.1", "userAgent": ""})
        self.assertEqual(ctx["timeEpoch"], 1_700_000_000_000)
        self.assertEqual(e["headers"]["x-forwarded-proto"], "http")
        self.assertEqual(e["headers"]["x-forwarded-port"], "5000")
        self.assertEqual(e["headers"]["x-forwarded-for"], "127.0.0.1")

    def test_binary_bodies_are_base64(self) -> None:
        e = self.event()  # an OCI manifest type is not one of HTTP API's text types
        self.assertTrue(e["isBase64Encoded"])
        self.assertEqual(base64.b64decode(e["body"]), b'{"k":1}')
        e = self.event(headers=[("Content-Type", "application/json; charset=utf-8")])
        self.assertEqual((e["body"], e["isBase64Encoded"]), ('{"k":1}', False))
        e = self.event(headers=[("Content-Type", "text/plain")], body=b"\xff\xfe")
        self.assertTrue(e["isBase64Encoded"])
        e = self.event(headers=[], body=b"abc")  # no Content-Type: binary
        self.assertTrue(e["isBase64Encoded"])

    def test_no_body(self) -> None:
        e = self.event(method="GET", body=None, raw_query="")
        self.assertNotIn("body", e)
        self.assertFalse(e["isBase64Encoded"])
        self.assertNotIn("queryStringParameters", e)

    def test_event_over_lambda_limit(self) -> None:
        # 4.5 MiB of binary body becomes 6 MiB of base64: over Lambda's 6291556 bytes.
        e = self.event(body=b"\0" * (4608 * 1024))
        self.assertGreater(len(json.dumps(e)), apigw.LAMBDA_MAX_PAYLOAD_BYTES)
        e = self.event(body=b"\0" * (4 * 1024 * 1024))
        self.assertLess(len(json.dumps(e)), apigw.LAMBDA_MAX_PAYLOAD_BYTES)


class ResponseTests(unittest.TestCase):
    def test_headers_cookies_and_base64(self) -> None:
        status, headers, body = map_response(json.dumps({
            "statusCode": 201, "headers": {"Location": "/x"}, "cookies": ["a=1"],
            "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True,
        }).encode())
        self.assertEqual(status, 201)
        self.assertIn(("Location", "/x"), headers)
        self.assertIn(("set-cookie", "a=1"), headers)
        self.assertEqual(body, b"\x00\x01")

    def test_without_status_code_is_200_json(self) -> None:
        status, headers, body = map_response(b'{"hello":"world"}')
        self.assertEqual((status, body), (200, b'{"hello":"world"}'))

    def test_malformed_is_refused(self) -> None:
        for bad in (b"not json", b'{"statusCode":"abc"}', b'{"statusCode":200,"body":"!!","isBase64Encoded":true}'):
            with self.assertRaises(apigw.BadResponse):
                map_response(bad)

    def test_gateway_answers(self) -> None:
        for status, message in ((413, "Request Entity Too Large"), (500, "Internal Server Error"),
                                (503, "Service Unavailable")):
            s, _, b = apigw.gateway_error(status)
            self.assertEqual((s, json.loads(b)["message"]), (status, message))


class FilterTests(unittest.TestCase):
    def rec(self, name: str, sk: str) -> dict:
        return {"eventName": name, "dynamodb": {"Keys": {"pk": {"S": "a/b"}, "sk": {"S": sk}}}}

    def test_notify_push_pattern(self) -> None:
        self.assertTrue(pattern_matches(NOTIFY_PATTERN, self.rec("INSERT", "EVENT#123")))
        self.assertFalse(pattern_matches(NOTIFY_PATTERN, self.rec("MODIFY", "EVENT#123")))
        self.assertFalse(pattern_matches(NOTIFY_PATTERN, self.rec("INSERT", "TAG#v1")))
        self.assertFalse(pattern_matches(NOTIFY_PATTERN, {"eventName": "INSERT", "dynamodb": {}}))

    def test_no_filters_match_everything_and_any_pattern_suffices(self) -> None:
        self.assertTrue(filters_match([], self.rec("REMOVE", "X")))
        self.assertTrue(filters_match([{"eventName": ["REMOVE"]}, NOTIFY_PATTERN], self.rec("REMOVE", "X")))


class FakeStreams:
    """dynamodbstreams' calls over a list of records; `fail_next` makes GetRecords raise."""

    def __init__(self, records: list[dict]):
        self.records = records
        self.fail_next = 0
        self.iterators_taken = 0

    def describe_stream(self, StreamArn: str, **kw):
        return {"StreamDescription": {"Shards": [{"ShardId": "s1"}]}}

    def get_shard_iterator(self, StreamArn, ShardId, ShardIteratorType, SequenceNumber=None):
        self.iterators_taken += 1
        seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in self.records]
        if ShardIteratorType == "TRIM_HORIZON":
            pos = 0
        elif ShardIteratorType == "LATEST":
            pos = len(self.records)
        elif ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            pos = sum(1 for s in seqs if s <= int(SequenceNumber))
        else:
            pos = sum(1 for s in seqs if s < int(SequenceNumber))
        return {"ShardIterator": str(pos)}

    def get_records(self, ShardIterator, Limit):
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("ExpiredIteratorException")
        pos = int(ShardIterator)
        got = self.records[pos:pos + Limit]
        return {"Records": got, "NextShardIterator": str(pos + len(got))}


def stream_record(seq: int, sk: str, name: str = "INSERT") -> dict:
    return {
        "eventID": f"e{seq}", "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"Keys": {"pk": {"S": "a/b"}, "sk": {"S": sk}}, "NewImage": {"sk": {"S": sk}, "b": {"B": b"\x01"}},
                     "SequenceNumber": str(seq), "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }


class MappingTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "checkpoints.json")
        self.seen: list[list[str]] = []
        self.fail: set[str] = set()
        self.error: str | None = None

    def tearDown(self) -> None:
        self.dir.cleanup()

    def invoke(self, payload: bytes):
        if self.error:
            return None, self.error
        seqs = [r["dynamodb"]["SequenceNumber"] for r in json.loads(payload)["Records"]]
        self.seen.append(seqs)
        failures = [{"itemIdentifier": s} for s in seqs if s in self.fail]
        return json.dumps({"batchItemFailures": failures}).encode(), None

    def esm(self, client, **kw) -> EventSourceMapping:
        args = dict(streams_client=client, stream_arn="arn:stream", region="us-east-1", invoke=self.invoke,
                    checkpoints=Checkpoints(self.path), batch_size=100, report_item_failures=True,
                    filters=[NOTIFY_PATTERN], log=lambda s: None, retry_backoff_s=0)
        args.update(kw)
        return EventSourceMapping(**args)

    def drain(self, esm: EventSourceMapping, rounds: int = 10) -> None:
        for _ in range(rounds):
            if not esm.poll_once("s1"):
                break

    def test_filters_batches_and_checkpoints(self) -> None:
        client = FakeStreams([stream_record(1, "TAG#x"), stream_record(2, "EVENT#1"), stream_record(3, "EVENT#2", "MODIFY")])
        esm = self.esm(client)
        self.drain(esm)
        self.assertEqual(self.seen, [["2"]])
        self.assertEqual(Checkpoints(self.path).get("arn:stream", "s1"), "3")

    def test_restart_resumes_after_the_checkpoint(self) -> None:
        client = FakeStreams([stream_record(1, "EVENT#1"), stream_record(2, "EVENT#2")])
        self.drain(self.esm(client))
        client.records.append(stream_record(3, "EVENT#3"))
        self.seen.clear()
        self.drain(self.esm(client))  # a new mapping, the same checkpoint file: a restarted harness
        self.assertEqual(self.seen, [["3"]])

    def test_starting_position_only_without_checkpoint(self) -> None:
        client = FakeStreams([stream_record(1, "EVENT#1")])
        esm = self.esm(client, starting_position="LATEST")
        self.drain(esm)
        self.assertEqual(self.seen, [])
        client.records.append(stream_record(2, "EVENT#2"))
        self.drain(esm)
        self.assertEqual(self.seen, [["2"]])

    def test_batch_item_failures_retry_from_the_first_failed(self) -> None:
        client = FakeStreams([stream_record(i, f"EVENT#{i}") for i in (1, 2, 3, 4)])
        self.fail = {"3"}
        esm = self.esm(client)
        esm.poll_once("s1")
        self.assertEqual(self.seen, [["1", "2", "3", "4"]])
        self.assertEqual(Checkpoints(self.path).get("arn:stream", "s1"), "2")
        self.fail = set()
        esm.poll_once("s1")
        self.assertEqual(self.seen[-1], ["3", "4"])
        self.assertEqual(Checkpoints(self.path).get("arn:stream", "s1"), "4")

    def test_failure_of_first_record_keeps_checkpoint(self) -> None:
        client = FakeStreams([stream_record(1, "EVENT#1"), stream_record(2, "EVENT#2")])
        self.fail = {"1"}
        esm = self.esm(client)
        self.assertFalse(esm.poll_once("s1"))
        self.assertIsNone(Checkpoints(self.path).get("arn:stream", "s1"))

    def test_function_error_retries_the_whole_batch_and_get_records_errors_take_a_fresh_iterator(self) -> None:
        client = FakeStreams([stream_record(1, "EVENT#1")])
        esm = self.esm(client)
        self.error = "crash"
        esm.poll_once("s1")
        self.assertIsNone(Checkpoints(self.path).get("arn:stream", "s1"))
        self.error = None
        client.fail_next = 1
        with self.assertRaises(RuntimeError):
            esm.poll_once("s1")
        taken = client.iterators_taken
        esm.poll_once("s1")
        self.assertEqual(client.iterators_taken, taken + 1)
        self.assertEqual(self.seen, [["1"]])

    def test_unusable_item_identifier_fails_the_batch(self) -> None:
        batch = [lambda_record(stream_record(1, "EVENT#1"), "arn", "us-east-1")]
        self.assertIs(failed_from({"batchItemFailures": [{"itemIdentifier": ""}]}, batch), True)
        self.assertIsNone(failed_from({"batchItemFailures": []}, batch))
        self.assertEqual(failed_from({"batchItemFailures": [{"itemIdentifier": "1"}]}, batch), "1")

    def test_lambda_record_shape(self) -> None:
        r = lambda_record(stream_record(7, "EVENT#1"), "arn:stream", "us-east-1")
        self.assertEqual(r["eventSourceARN"], "arn:stream")
        self.assertEqual(r["eventSource"], "aws:dynamodb")
        self.assertEqual(r["dynamodb"]["NewImage"]["b"], {"B": "AQ=="})
        self.assertEqual(r["dynamodb"]["SequenceNumber"], "7")


class RuntimeTests(unittest.TestCase):
    """The runtime API and the pool, with fake_function.py as the function."""

    def pool(self, timeout_s: float = 5.0, **env) -> Pool:
        base = {
            "AWS_LAMBDA_FUNCTION_NAME": "fake", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fake",
            "PATH": os.environ.get("PATH", ""),
        }
        base.update(env)
        spec = FunctionSpec(logical_id="Fake", name="fake", command=[sys.executable, str(HERE / "fake_function.py")],
                            env=base, timeout_s=timeout_s, memory_mb=128)
        p = Pool(spec, max_sandboxes=3)
        self.addCleanup(p.close)
        return p

    def call(self, pool: Pool, path: str, wait: float = 20.0):
        return pool.invoke(json.dumps({"rawPath": path}).encode(), wait_s=wait)

    def test_answer_cold_then_warm(self) -> None:
        p = self.pool()
        first = self.call(p, "/echo")
        self.assertIsNone(first.error)
        self.assertTrue(first.cold)
        self.assertIsNotNone(first.init_ms)
        self.assertIsNotNone(first.peak_rss_kb)
        status, headers, body = map_response(first.result)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"rawPath": "/echo"})
        second = self.call(p, "/echo")
        self.assertFalse(second.cold)
        self.assertEqual(second.pid, first.pid)

    def test_sandbox_outlives_the_thread_that_started_it(self) -> None:
        import runtime
        from serve import _pdeathsig

        saved, runtime.PREEXEC = runtime.PREEXEC, _pdeathsig
        self.addCleanup(setattr, runtime, "PREEXEC", saved)
        p = self.pool()
        box = []
        t = threading.Thread(target=lambda: box.append(self.call(p, "/echo")))
        t.start()
        t.join()
        time.sleep(0.3)
        again = self.call(p, "/echo")
        self.assertIsNone(again.error)
        self.assertEqual(again.pid, box[0].pid)

    def test_overlapping_invocations_get_their_own_processes(self) -> None:
        p = self.pool()
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.call(p, "/sleep/0.5"))) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len({r.pid for r in results}), 3)
        self.assertTrue(all(r.error is None for r in results))

    def test_crash_is_an_error_and_the_next_call_gets_a_new_process(self) -> None:
        p = self.pool()
        a = self.call(p, "/echo")
        crashed = self.call(p, "/crash")
        self.assertEqual(crashed.error_kind, "crash")
        b = self.call(p, "/echo")
        self.assertIsNone(b.error)
        self.assertNotEqual(a.pid, b.pid)

    def test_timeout_kills_the_sandbox(self) -> None:
        p = self.pool(timeout_s=0.5)
        inv = self.call(p, "/sleep/30")
        self.assertEqual(inv.error_kind, "timeout")
        self.assertIn("Task timed out", inv.error)
        after = self.call(p, "/echo")
        self.assertIsNone(after.error)
        self.assertNotEqual(after.pid, inv.pid)

    def test_function_error_and_init_error(self) -> None:
        self.assertEqual(self.call(self.pool(), "/error").error_kind, "function")
        self.assertEqual(self.call(self.pool(FAKE_MODE="init-fail"), "/echo").error_kind, "init")

    def test_response_over_6_mb_is_refused(self) -> None:
        inv = self.call(self.pool(), f"/big/{apigw.LAMBDA_MAX_PAYLOAD_BYTES}")
        self.assertEqual(inv.error_kind, "payload")

    def test_malformed_response_maps_to_500(self) -> None:
        inv = self.call(self.pool(), "/bad")
        with self.assertRaises(apigw.BadResponse):
            map_response(inv.result)


if __name__ == "__main__":
    unittest.main()
