"""A small OTLP/HTTP trace receiver for the tests: POST /v1/traces bodies are decoded with the
official `opentelemetry-proto` messages, and each span is appended to the file given as the
first argument as one JSON line (ids in hex, attributes as a dict, events with theirs).
Prints `port=<n>` once listening on 127.0.0.1 (the OS picks the port)."""
import asyncio
import json
import sys

from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

OUT = sys.argv[1]


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


async def traces(request):
    body = await request.read()
    req = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    with open(OUT, "a") as f:
        for rs in req.resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    f.write(json.dumps({
                        "resource": resource,
                        "scope": ss.scope.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "trace_state": s.trace_state,
                        "name": s.name,
                        "kind": s.kind,
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "attributes": attrs(s.attributes),
                        "events": [{"name": e.name, "time": e.time_unix_nano, "attributes": attrs(e.attributes)} for e in s.events],
                        "status": {"code": s.status.code, "message": s.status.message},
                        "content_type": request.headers.get("content-type"),
                    }) + "\n")
    return web.Response(body=trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
                        content_type="application/x-protobuf")


async def main():
    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(f"port={port}", flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
