"""kafka-python client program for Spate's end-to-end tests.

Implements the commands of common.py with kafka-python's KafkaProducer, KafkaConsumer and
KafkaAdminClient. The consumer uses assign() with group_id=None, so it needs no group coordinator.
"""

import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

import common

# Bound on any single request, so a broken broker fails the test instead of hanging it.
REQUEST_TIMEOUT_MS = 30_000

# kafka-python names "no compression" None.
CODECS = {"none": None, "gzip": "gzip", "snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}


def create_topic(args):
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    result = admin.create_topics(
        {
            args.topic: {
                "num_partitions": args.partitions,
                "replication_factor": 1,
                "configs": common.parse_configs(args.config),
            }
        },
        timeout_ms=REQUEST_TIMEOUT_MS,
    )
    admin.close()
    return result


def produce(args):
    records = common.read_input(args.input)
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        compression_type=CODECS[args.codec],
        linger_ms=5,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )
    futures = []
    for record in records:
        futures.append(
            producer.send(
                args.topic,
                key=record["key"],
                value=record["value"],
                headers=record["headers"],
                timestamp_ms=record["timestamp"],
            )
        )
    producer.flush(timeout=REQUEST_TIMEOUT_MS / 1000)
    errors = []
    with open(args.out, "w", encoding="utf-8") as out:
        for index, future in enumerate(futures):
            try:
                metadata = future.get(timeout=REQUEST_TIMEOUT_MS / 1000)
            except KafkaError as e:
                errors.append(f"record {index}: {e}")
                continue
            out.write(common.produced_line(index, metadata.partition, metadata.offset) + "\n")
    producer.close()
    if errors:
        common.fail("produce failed: " + "; ".join(errors[:10]))


def new_consumer(bootstrap):
    # group_id=None: assign() with explicit offsets needs no group coordinator.
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )


def partitions_of(consumer, topic):
    deadline = time.monotonic() + REQUEST_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        time.sleep(0.2)
    common.fail(f"topic {topic} not in metadata")


def consume(args):
    consumer = new_consumer(args.bootstrap)
    partitions = [TopicPartition(args.topic, p) for p in partitions_of(consumer, args.topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    deadline = time.monotonic() + args.timeout_ms / 1000
    count = 0
    with open(args.out, "w", encoding="utf-8") as out:
        while count < args.expect and time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    type_name = {0: "CreateTime", 1: "LogAppendTime"}.get(r.timestamp_type, "NoTimestamp")
                    out.write(
                        common.consumed_line(
                            r.partition, r.offset, r.key, r.value, r.headers, r.timestamp, type_name
                        )
                        + "\n"
                    )
                    count += 1
    consumer.close()
    if count < args.expect:
        common.fail(f"consumed {count} of {args.expect} records within {args.timeout_ms} ms")


def list_offsets(args):
    consumer = new_consumer(args.bootstrap)
    partitions = partitions_of(consumer, args.topic)
    results = []
    for timestamp in args.timestamp:
        found = consumer.offsets_for_times({TopicPartition(args.topic, p): timestamp for p in partitions})
        offsets = {}
        for tp, offset_and_ts in found.items():
            # kafka-python reports "no offset at or after this timestamp" as None.
            offsets[str(tp.partition)] = -1 if offset_and_ts is None else offset_and_ts.offset
        results.append({"timestamp": timestamp, "offsets": offsets})
    consumer.close()
    common.write_json(args.out, {"results": results})


def describe_configs(args):
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, args.topic)], config_filter="all"
    )
    admin.close()
    entries = described.get("topic", {}).get(args.topic)
    if entries is None:
        common.fail(f"describe_configs returned nothing for topic {args.topic}: {described}")
    configs = []
    for name, entry in sorted(entries.items()):
        source = entry.get("config_source")
        configs.append(
            {
                "name": name,
                "value": entry.get("value"),
                "source": source,
                "is_default": source == "DEFAULT_CONFIG",
                "read_only": bool(entry.get("read_only")),
                "sensitive": bool(entry.get("is_sensitive")),
            }
        )
    common.write_json(args.out, {"configs": configs})


COMMANDS = {
    "create-topic": create_topic,
    "produce": produce,
    "consume": consume,
    "list-offsets": list_offsets,
    "describe-configs": describe_configs,
}


def main():
    args = common.parse_args()
    try:
        COMMANDS[args.command](args)
    except KafkaError as e:
        common.fail(f"{args.command} failed: {e!r}")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
