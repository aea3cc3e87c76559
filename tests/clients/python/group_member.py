"""A consumer group member for Spate's group tests, on confluent-kafka (librdkafka).

    group_member.py --bootstrap B --topic T [--topic T2] --group G --out EVENTS
        [--instance-id I] [--assignor range|roundrobin|cooperative-sticky]
        [--protocol classic|consumer] [--session-timeout-ms N] [--stop-file F]
        [--client-id C]

Subscribes, consumes, and commits synchronously after every poll batch. Every step is one JSON
line in EVENTS, flushed at once so a test can follow the member live and still read it after a
SIGKILL (see tests/clients/README.md, "Group members"). The member leaves the group cleanly when
the stop file appears.
"""

import argparse
import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

# How long one poll waits; short so the stop file is noticed quickly.
POLL_TIMEOUT_S = 0.2
# Records per poll batch (committed together).
POLL_BATCH_RECORDS = 100


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", action="append", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--instance-id")
    parser.add_argument("--assignor", default="range")
    parser.add_argument("--protocol", default="classic", choices=["classic", "consumer"])
    parser.add_argument("--session-timeout-ms", type=int, default=10_000)
    parser.add_argument("--stop-file")
    parser.add_argument("--client-id", default="group-member")
    return parser.parse_args()


class Events:
    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")

    def write(self, event, **fields):
        fields["event"] = event
        fields["ts"] = int(time.time() * 1000)
        self.file.write(json.dumps(fields) + "\n")
        self.file.flush()


def partitions(tps):
    return sorted([tp.topic, tp.partition] for tp in tps)


def main():
    args = parse_args()
    events = Events(args.out)
    config = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": args.client_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    if args.protocol == "consumer":
        config["group.protocol"] = "consumer"
    else:
        config["session.timeout.ms"] = args.session_timeout_ms
        config["heartbeat.interval.ms"] = max(args.session_timeout_ms // 10, 100)
        config["partition.assignment.strategy"] = args.assignor
    if args.instance_id:
        config["group.instance.id"] = args.instance_id
    consumer = Consumer(config)

    def on_assign(consumer, tps):
        events.write("assigned", partitions=partitions(tps))

    def on_revoke(consumer, tps):
        events.write("revoked", partitions=partitions(tps))

    def on_lost(consumer, tps):
        events.write("lost", partitions=partitions(tps))

    consumer.subscribe(args.topic, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    events.write("started", pid=os.getpid())
    try:
        while not (args.stop_file and os.path.exists(args.stop_file)):
            messages = consumer.consume(num_messages=POLL_BATCH_RECORDS, timeout=POLL_TIMEOUT_S)
            positions = {}
            for msg in messages:
                if msg.error():
                    events.write("error", error=str(msg.error()))
                    continue
                events.write(
                    "record",
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    key=msg.key().hex() if msg.key() is not None else None,
                )
                positions[(msg.topic(), msg.partition())] = msg.offset() + 1
            if positions:
                offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(positions.items())]
                try:
                    consumer.commit(offsets=offsets, asynchronous=False)
                    events.write("committed", offsets=[[t, p, o] for (t, p), o in sorted(positions.items())])
                except KafkaException as error:
                    # A commit refused mid-rebalance is normal; the records are consumed again.
                    events.write("commit_failed", error=str(error))
    finally:
        consumer.close()
        events.write("closed")


if __name__ == "__main__":
    sys.exit(main())
