"""The bare reference of the reflex benchmark: a minimal paho echo, run as its own process.

    python -m shared.bench.harness.echo mqtt://127.0.0.1:1883 'bench/echo/+/r'

Every message on `<prefix>/<device>/r` goes straight back to `<prefix>/<device>/cmd`
(QoS 0, as the daemon's core-NATS commands reach an MQTT subscriber), from paho's own
network thread: no decode, no rule, nothing but the broker hops. Prints `ready` once
subscribed; SIGTERM ends it.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shared.bench.harness.mqtt import host_port, no_delay


def main(argv: list[str]) -> int:
    url, pattern = argv
    host, port = host_port(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare-echo")
    client.on_socket_open = no_delay

    def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        c.publish(msg.topic[: -len("/r")] + "/cmd", msg.payload, qos=0)

    client.on_message = on_message
    # QoS 0: the plain delivery path, as the daemon's core NATS subscription gets it (a QoS 1
    # subscription of the MQTT listener is served through its JetStream session store).
    client.on_connect = lambda c, *_: c.subscribe(pattern, qos=0)
    client.on_subscribe = lambda *_: print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client.connect(host, port, keepalive=60)
    client.loop_start()
    stop.wait()
    client.disconnect()
    client.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
