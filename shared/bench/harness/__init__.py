"""What the benchmarks drive: child processes (`baton edge run`, the bare paho echo, the
bare nats-py floor, the simulator, Node-RED), MQTT probes and floods, broker counters."""
