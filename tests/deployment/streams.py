"""A DynamoDB stream event source mapping, as Lambda runs one: poll each shard, keep what the
filter criteria match, invoke the function with batches (BatchSize, MaximumBatchingWindowInSeconds),
checkpoint per shard after a successful batch, retry from the first sequence number the function
reports in `batchItemFailures` (ReportBatchItemFailures), retry a failed invocation.

The checkpoint (per stream ARN and shard: the last sequence number processed) lives in a JSON
file, so that a restarted harness continues where it stopped; StartingPosition applies only to
a shard without a checkpoint. Every poll takes a fresh iterator from the checkpoint: moto swaps
its table (and the stream's shard) when a transaction is cancelled, and an old iterator keeps
reading the discarded shard without an error (FIELD-NOTES.md).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import threading
import time
from datetime import datetime
from typing import Any, Callable


# --- Filter criteria (the subset of Lambda's event filtering the template uses, and a bit more).


def _matches_value(rules: list[Any], value: Any, present: bool) -> bool:
    """One field's rule list: any rule matching is a match."""
    for rule in rules:
        if isinstance(rule, dict):
            if "prefix" in rule:
                if present and isinstance(value, str) and value.startswith(rule["prefix"]):
                    return True
            elif "suffix" in rule:
                if present and isinstance(value, str) and value.endswith(rule["suffix"]):
                    return True
            elif "exists" in rule:
                if bool(rule["exists"]) == present:
                    return True
            elif "anything-but" in rule:
                but = rule["anything-but"]
                but = but if isinstance(but, list) else [but]
                if present and value not in but:
                    return True
            elif "equals-ignore-case" in rule:
                if present and isinstance(value, str) and value.lower() == str(rule["equals-ignore-case"]).lower():
                    return True
            else:
                raise ValueError(f"filter rule {rule!r} is not emulated")
        elif present and value == rule:
            return True
        elif rule is None and present and value is None:
            return True
    return False


def pattern_matches(pattern: dict[str, Any], doc: Any) -> bool:
    """Whether `doc` (a stream record as Lambda gives it) matches one filter pattern."""
    for key, rules in pattern.items():
        present = isinstance(doc, dict) and key in doc
        value = doc.get(key) if present else None
        if isinstance(rules, dict):
            if not present or not pattern_matches(rules, value):
                return False
        elif isinstance(rules, list):
            if isinstance(value, list):
                if not any(_matches_value(rules, v, True) for v in value):
                    return False
            elif not _matches_value(rules, value, present):
                return False
        else:
            raise ValueError(f"filter pattern value {rules!r} for {key!r} is not a list or object")
    return True


def filters_match(patterns: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    """No filters: everything; else any pattern matching."""
    return not patterns or any(pattern_matches(p, record) for p in patterns)


# --- Checkpoints.


class Checkpoints:
    """{stream ARN: {shard id: last sequence number processed}}, kept in a JSON file."""

    def __init__(self, path: str | None):
        self.path = path
        self.lock = threading.Lock()
        self.data: dict[str, dict[str, str]] = {}
        if path and os.path.exists(path):
            with open(path) as f:
                self.data = json.load(f)

    def get(self, stream_arn: str, shard_id: str) -> str | None:
        with self.lock:
            return self.data.get(stream_arn, {}).get(shard_id)

    def set(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        with self.lock:
            self.data.setdefault(stream_arn, {})[shard_id] = sequence_number
            if self.path:
                d = os.path.dirname(self.path) or "."
                fd, tmp = tempfile.mkstemp(dir=d, prefix=".checkpoints.")
                with os.fdopen(fd, "w") as f:
                    json.dump(self.data, f, indent=1, sort_keys=True)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)


# --- Records as Lambda delivers them.


def _json_attr(value: Any) -> Any:
    """A boto3 (low-level client) attribute value as JSON: bytes in base64, sets as lists."""
    if isinstance(value, dict):
        return {k: _json_attr(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_attr(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


def lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record (boto3) as the DynamoDB event record Lambda gives the function."""
    ddb = dict(record.get("dynamodb") or {})
    out_ddb: dict[str, Any] = {}
    created = ddb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        out_ddb["ApproximateCreationDateTime"] = created.timestamp()
    elif created is not None:
        out_ddb["ApproximateCreationDateTime"] = float(created)
    for k in ("Keys", "NewImage", "OldImage"):
        if k in ddb:
            out_ddb[k] = _json_attr(ddb[k])
    for k in ("SequenceNumber", "SizeBytes", "StreamViewType"):
        if k in ddb:
            out_ddb[k] = ddb[k]
    out = {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": record.get("eventSource", "aws:dynamodb"),
        "awsRegion": record.get("awsRegion") or region,
        "dynamodb": out_ddb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:
        out["userIdentity"] = record["userIdentity"]
    return out


def seq_key(seq: str) -> int:
    return int(seq)


def failed_from(response: Any, batch: list[dict[str, Any]]) -> str | None | bool:
    """The first sequence number to retry from, None if the whole batch succeeded, or True if
    the response says the whole batch failed (an unusable itemIdentifier counts as that, as
    Lambda treats it)."""
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if not failures:
        return None
    seqs = {r["dynamodb"]["SequenceNumber"] for r in batch}
    ids = []
    for f in failures:
        ident = f.get("itemIdentifier") if isinstance(f, dict) else None
        if not ident or ident not in seqs:
            return True
        ids.append(ident)
    return min(ids, key=seq_key)


# --- The poller.


class EventSourceMapping:
    def __init__(
        self,
        *,
        streams_client: Any,
        stream_arn: str,
        region: str,
        invoke: Callable[[bytes], tuple[bytes | None, str | None]],
        checkpoints: Checkpoints,
        starting_position: str = "TRIM_HORIZON",
        batch_size: int = 100,
        window_s: float = 0.0,
        report_item_failures: bool = False,
        filters: list[dict[str, Any]] | None = None,
        log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
        idle_poll_s: float = 0.25,
        retry_backoff_s: float = 0.5,
    ):
        self.client = streams_client
        self.stream_arn = stream_arn
        self.region = region
        self.invoke = invoke
        self.checkpoints = checkpoints
        self.starting_position = starting_position
        self.batch_size = batch_size
        self.window_s = window_s
        self.report_item_failures = report_item_failures
        self.filters = filters or []
        self.log = log
        self.idle_poll_s = idle_poll_s
        self.retry_backoff_s = retry_backoff_s
        self.stop_event = threading.Event()
        self.latest_start: dict[str, str | None] = {}
        self.thread: threading.Thread | None = None
        self.invocations = 0

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="event-source-mapping", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread:
            self.thread.join(timeout=5)

    def _iterator(self, shard_id: str) -> str:
        checkpoint = self.checkpoints.get(self.stream_arn, shard_id)
        if checkpoint is not None:
            r = self.client.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=checkpoint,
            )
        elif self.starting_position == "LATEST":
            # No checkpoint yet: the position the mapping started at, kept until a batch
            # makes a checkpoint (a fresh LATEST each poll would skip what came between).
            if self.latest_start.get(shard_id) is None:
                r = self.client.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="LATEST")
                self.latest_start[shard_id] = r["ShardIterator"]
            return self.latest_start[shard_id]
        else:
            r = self.client.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
        return r["ShardIterator"]

    def _shards(self) -> list[str]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            d = self.client.describe_stream(**kwargs)["StreamDescription"]
            shards += d.get("Shards", [])
            last = d.get("LastEvaluatedShardId")
            if not last:
                break
            kwargs["ExclusiveStartShardId"] = last
        # Parents before children.
        ids = [s["ShardId"] for s in shards]
        order: list[str] = []
        parents = {s["ShardId"]: s.get("ParentShardId") for s in shards}

        def visit(i: str) -> None:
            if i in order:
                return
            p = parents.get(i)
            if p in parents:
                visit(p)
            order.append(i)

        for i in ids:
            visit(i)
        return order

    def poll_once(self, shard_id: str) -> bool:
        """Reads, filters, invokes and checkpoints one batch of a shard. True if it made
        progress (so the caller polls again at once)."""
        records: list[dict[str, Any]] = []
        first_at: float | None = None
        iterator = self._iterator(shard_id)
        while iterator and len(records) < self.batch_size:
            r = self.client.get_records(ShardIterator=iterator, Limit=min(1000, self.batch_size - len(records)))
            got = r.get("Records", [])
            iterator = r.get("NextShardIterator")
            if not got and not records and shard_id in self.latest_start and iterator:
                self.latest_start[shard_id] = iterator
            if got:
                records += got
                first_at = first_at or time.monotonic()
            if len(records) >= self.batch_size:
                break
            if first_at is None:
                break  # nothing waiting
            if time.monotonic() - first_at >= self.window_s:
                break
            if not got:
                time.sleep(min(0.1, self.window_s))
        if not records:
            return False
        events = [lambda_record(r, self.stream_arn, self.region) for r in records]
        kept = [e for e in events if filters_match(self.filters, e)]
        last_seq = events[-1]["dynamodb"]["SequenceNumber"]
        if not kept:
            self.checkpoints.set(self.stream_arn, shard_id, last_seq)
            return True
        payload = json.dumps({"Records": kept}).encode()
        t0 = time.monotonic()
        result, error = self.invoke(payload)
        self.invocations += 1
        if error is not None:
            self.log(f"event-source-mapping: {len(kept)} records failed ({error}); retrying the batch")
            self.stop_event.wait(self.retry_backoff_s)
            return False
        response = None
        if result:
            try:
                response = json.loads(result)
            except ValueError:
                response = None
        retry_from = failed_from(response, kept) if self.report_item_failures else None
        if retry_from is True:
            self.log("event-source-mapping: the function reported the whole batch failed; retrying it")
            self.stop_event.wait(self.retry_backoff_s)
            return False
        if retry_from is None:
            self.checkpoints.set(self.stream_arn, shard_id, last_seq)
            return True
        # Checkpoint just before the first failed record: the record before it in the batch
        # as read (filtered-out records included), or nothing new if it is the first.
        seqs = [e["dynamodb"]["SequenceNumber"] for e in events]
        i = seqs.index(retry_from)
        if i > 0:
            self.checkpoints.set(self.stream_arn, shard_id, seqs[i - 1])
        self.log(f"event-source-mapping: retrying from sequence number {retry_from} (batchItemFailures)")
        self.stop_event.wait(self.retry_backoff_s)
        return i > 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            progressed = False
            try:
                for shard in self._shards():
                    while not self.stop_event.is_set() and self.poll_once(shard):
                        progressed = True
            except Exception as e:  # GetRecords/iterator failures: a fresh iterator next time
                self.log(f"event-source-mapping: {type(e).__name__}: {e}; taking a fresh iterator from the checkpoint")
                self.stop_event.wait(self.retry_backoff_s)
                continue
            if not progressed:
                self.stop_event.wait(self.idle_poll_s)
