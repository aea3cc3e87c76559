"""Posts CloudEvents built with the CloudEvents Python SDK to a Spate broker URL.

Usage: cloudevents_client.py URL MODE ID [ID ...]
  MODE is binary, structured or batch. Prints the HTTP status of each request, one per line.
"""

import sys
import urllib.error
import urllib.request

from cloudevents.core.bindings.http import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent


def event(event_id):
    return CloudEvent(
        attributes={
            "id": event_id,
            "type": "com.example.sdk",
            "source": "/python-sdk",
            "datacontenttype": "application/json",
            "partitionkey": "sdk-key",
        },
        data={"id": event_id, "from": "python"},
    )


def post(url, headers, body):
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def main():
    url, mode, ids = sys.argv[1], sys.argv[2], sys.argv[3:]
    fmt = JSONFormat()
    if mode == "batch":
        body = b"[" + b",".join(fmt.write(event(i)) for i in ids) + b"]"
        print(post(url, {"content-type": "application/cloudevents-batch+json"}, body))
        return
    for i in ids:
        message = to_binary(event(i), fmt) if mode == "binary" else to_structured(event(i), fmt)
        print(post(url, dict(message.headers), message.body))


if __name__ == "__main__":
    main()
