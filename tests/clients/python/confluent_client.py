"""confluent-kafka (librdkafka) client program for Spate's end-to-end tests.

Implements the commands of common.py with confluent-kafka's Producer, Consumer and AdminClient.
The consumer uses assign() and never joins its group or commits.
"""

import sys
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic, ResourceType

import common

# Bound on any single admin or metadata call, so a broken broker fails the test instead of hanging it.
REQUEST_TIMEOUT_S = 30


def create_topic(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    topic = NewTopic(
        args.topic,
        num_partitions=args.partitions,
        replication_factor=1,
        config=common.parse_configs(args.config),
    )
    futures = admin.create_topics([topic], request_timeout=REQUEST_TIMEOUT_S)
    futures[args.topic].result(timeout=REQUEST_TIMEOUT_S)


def produce(args):
    records = common.read_input(args.input)
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "compression.type": args.codec,
            # Idempotence exercises InitProducerId and sequence numbers, and keeps per-partition order.
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    results = [None] * len(records)
    errors = []

    def on_delivery(index):
        def callback(err, msg):
            if err is not None:
                errors.append(f"record {index}: {err}")
            else:
                results[index] = (msg.partition(), msg.offset())

        return callback

    for index, record in enumerate(records):
        while True:
            try:
                producer.produce(
                    args.topic,
                    key=record["key"],
                    value=record["value"],
                    headers=record["headers"],
                    timestamp=record["timestamp"] or 0,
                    on_delivery=on_delivery(index),
                )
                break
            except BufferError:
                # The local queue is full: serve delivery reports to make room.
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(REQUEST_TIMEOUT_S)
    if remaining:
        errors.append(f"{remaining} records still undelivered after {REQUEST_TIMEOUT_S}s")
    with open(args.out, "w", encoding="utf-8") as out:
        for index, result in enumerate(results):
            if result is not None:
                out.write(common.produced_line(index, result[0], result[1]) + "\n")
    if errors:
        common.fail("produce failed: " + "; ".join(errors[:10]))


def partitions_of(client, topic):
    metadata = client.list_topics(topic, timeout=REQUEST_TIMEOUT_S)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None:
        common.fail(f"topic {topic} not in metadata: {described.error if described else 'missing'}")
    return sorted(described.partitions)


def new_consumer(bootstrap):
    # confluent-kafka refuses to create a consumer without group.id, but with assign(), explicit
    # offsets and no commits, the group is never joined and no offsets are committed.
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "spate-e2e-assign-only",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )


def consume(args):
    consumer = new_consumer(args.bootstrap)
    partitions = partitions_of(consumer, args.topic)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
    deadline = time.monotonic() + args.timeout_ms / 1000
    count = 0
    with open(args.out, "w", encoding="utf-8") as out:
        while count < args.expect and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                common.fail(f"consume error: {msg.error()}")
            ts_type, ts = msg.timestamp()
            type_name = {
                TIMESTAMP_CREATE_TIME: "CreateTime",
                TIMESTAMP_LOG_APPEND_TIME: "LogAppendTime",
            }.get(ts_type, "NoTimestamp")
            out.write(
                common.consumed_line(
                    msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers(), ts, type_name
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
        found = consumer.offsets_for_times(
            [TopicPartition(args.topic, p, timestamp) for p in partitions], timeout=REQUEST_TIMEOUT_S
        )
        offsets = {}
        for tp in found:
            if tp.error is not None:
                common.fail(f"offsets_for_times partition {tp.partition}: {tp.error}")
            # librdkafka reports "no such offset" as -1 (OFFSET_END).
            offsets[str(tp.partition)] = tp.offset if tp.offset >= 0 else -1
        results.append({"timestamp": timestamp, "offsets": offsets})
    consumer.close()
    common.write_json(args.out, {"results": results})


def describe_configs(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, args.topic)
    futures = admin.describe_configs([resource], request_timeout=REQUEST_TIMEOUT_S)
    entries = list(futures.values())[0].result(timeout=REQUEST_TIMEOUT_S)
    configs = []
    for name, entry in sorted(entries.items()):
        configs.append(
            {
                "name": name,
                "value": entry.value,
                # ConfigEntry.source is the wire code; name it as Kafka does (DEFAULT_CONFIG, ...).
                "source": ConfigSource(entry.source).name,
                "is_default": bool(entry.is_default),
                "read_only": bool(entry.is_read_only),
                "sensitive": bool(entry.is_sensitive),
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
    except KafkaException as e:
        common.fail(f"{args.command} failed: {e}")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
