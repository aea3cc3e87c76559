"""The command-line interface shared by every client program of Spate's end-to-end tests.

Each client program (one per Kafka client library) implements the same five commands, so the Rust
tests drive all of them the same way; see tests/clients/README.md for the contract and the file
formats. Bytes travel hex-encoded so keys, values and header values can be arbitrary binary.
"""

import argparse
import json
import sys

# How long `consume` waits for the expected records before giving up, unless told otherwise.
DEFAULT_CONSUME_TIMEOUT_MS = 60_000


def parse_args(argv=None):
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)

    create = commands.add_parser("create-topic")
    create.add_argument("--bootstrap", required=True)
    create.add_argument("--topic", required=True)
    create.add_argument("--partitions", type=int, required=True)
    create.add_argument("--config", action="append", default=[], help="KEY=VALUE, repeatable")

    produce = commands.add_parser("produce")
    produce.add_argument("--bootstrap", required=True)
    produce.add_argument("--topic", required=True)
    produce.add_argument("--input", required=True)
    produce.add_argument("--codec", required=True, choices=["none", "gzip", "snappy", "lz4", "zstd"])
    produce.add_argument("--out", required=True)

    consume = commands.add_parser("consume")
    consume.add_argument("--bootstrap", required=True)
    consume.add_argument("--topic", required=True)
    consume.add_argument("--expect", type=int, required=True)
    consume.add_argument("--out", required=True)
    consume.add_argument("--timeout-ms", type=int, default=DEFAULT_CONSUME_TIMEOUT_MS)

    offsets = commands.add_parser("list-offsets")
    offsets.add_argument("--bootstrap", required=True)
    offsets.add_argument("--topic", required=True)
    offsets.add_argument("--timestamp", type=int, action="append", required=True)
    offsets.add_argument("--out", required=True)

    configs = commands.add_parser("describe-configs")
    configs.add_argument("--bootstrap", required=True)
    configs.add_argument("--topic", required=True)
    configs.add_argument("--out", required=True)
    return parser.parse_args(argv)


def parse_configs(pairs):
    configs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"--config expects KEY=VALUE, got {pair!r}")
        configs[key] = value
    return configs


def to_hex(data):
    """Hex of bytes, or None for a null key/value/header value."""
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode("utf-8")
    return data.hex()


def from_hex(text):
    if text is None:
        return None
    return bytes.fromhex(text)


def read_input(path):
    """The records to produce, in order: dicts with bytes key/value, headers [(str, bytes)], timestamp."""
    records = []
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            raw = json.loads(line)
            records.append(
                {
                    "key": from_hex(raw.get("key")),
                    "value": from_hex(raw.get("value")),
                    "headers": [(name, from_hex(value)) for name, value in raw.get("headers", [])],
                    "timestamp": raw.get("timestamp"),
                }
            )
    return records


def consumed_line(partition, offset, key, value, headers, timestamp, timestamp_type):
    return json.dumps(
        {
            "partition": partition,
            "offset": offset,
            "key": to_hex(key),
            "value": to_hex(value),
            "headers": [[name, to_hex(v)] for name, v in (headers or [])],
            "timestamp": timestamp,
            "timestamp_type": timestamp_type,
        }
    )


def produced_line(index, partition, offset):
    return json.dumps({"index": index, "partition": partition, "offset": offset})


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.write("\n")


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)
