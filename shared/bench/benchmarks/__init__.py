"""One module per benchmark, each `name`, `title`, `async def run(ctx) -> list[Row]`.

    reflex     reading → command round trip through `baton edge run` vs a bare paho echo
    ingest     sustained readings/s with reflex + durable uplink vs the simulator alone
    drain      leaf backlog → hub through the uplink vs raw nats-py JetStream publishing
    onnx       OnnxScorer.score per window vs a bare InferenceSession.run
    llm        tokens/s of the agent engine vs bare llama-cpp-python, same GGUF
    handoff    session handoff, request → new owner accepting input (64 KB, 4 MB)
    webrtc     session stream over the data channel vs a bare aiortc channel
    footprint  daemon RSS idle / with ONNX / under load, start-up time to ready
    peer       the reflex workload on Node-RED 4 on the same broker

Edge and cloud code is imported inside the functions that use it, never at the top:
`shared` must not depend on them.
"""
