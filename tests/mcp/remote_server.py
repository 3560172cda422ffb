"""A real MCP server for the bridge to front (the official SDK's server side, Streamable HTTP).

`python remote_server.py PORT KEY` serves tools `add`, `shout` and `admin_reset` at
http://127.0.0.1:PORT/mcp; every request must carry `Authorization: Bearer KEY` (the gateway's
stored credential), else 401.
"""

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("calc")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


@server.tool()
def admin_reset() -> str:
    """Never offered through the gateway (excluded in its config)."""
    return "reset"


def guarded(app, key):
    async def asgi(scope, receive, send):
        if scope["type"] == "http":
            auth = dict(scope["headers"]).get(b"authorization", b"").decode()
            if auth != f"Bearer {key}":
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await app(scope, receive, send)

    return asgi


if __name__ == "__main__":
    port, key = int(sys.argv[1]), sys.argv[2]
    app = guarded(server.streamable_http_app(), key)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
