"""The MCP bridge seen through the official `mcp` Python SDK (run by tests/e2e/mcp.rs): a pet
store API described by conf/mcp-petstore.openapi.json, served as MCP tools by two gateway
instances that share a session key. Tools are listed and called in the SDK's default mode
(2026-07-28, `server/discover`), pinned to older revisions with a session, with the session
alternating between the instances, and combined at `/mcp`."""
import os

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

A = os.environ["MCP_URL_A"]
B = os.environ["MCP_URL_B"]
KEY = os.environ["TOLLGATE_KEY"]
LIMITED_KEY = os.environ["TOLLGATE_LIMITED_KEY"]
TOOLS = {"listPets", "addPet", "getPet", "delete_pets_petId"}


class Alternating(httpx2.AsyncBaseTransport):
    """Sends each request to the other instance than the last one did."""

    def __init__(self, ports):
        self.ports = ports
        self.n = 0
        self.inner = httpx2.AsyncHTTPTransport()
        self.used = []

    async def handle_async_request(self, request):
        port = self.ports[self.n % len(self.ports)]
        self.n += 1
        self.used.append(port)
        request.url = request.url.copy_with(port=port)
        return await self.inner.handle_async_request(request)

    async def aclose(self):
        await self.inner.aclose()


class StreamHereMessagesThere(httpx2.AsyncBaseTransport):
    """The legacy SSE stream on one instance, every posted message to the other."""

    def __init__(self, stream_port, post_port):
        self.stream_port, self.post_port = stream_port, post_port
        self.inner = httpx2.AsyncHTTPTransport()
        self.posts = 0

    async def handle_async_request(self, request):
        if request.method == "POST":
            self.posts += 1
            request.url = request.url.copy_with(port=self.post_port)
        else:
            request.url = request.url.copy_with(port=self.stream_port)
        return await self.inner.handle_async_request(request)

    async def aclose(self):
        await self.inner.aclose()


def sse(url, transport=None):
    headers = {"Authorization": f"Bearer {KEY}", "X-User": "alice"}

    def factory(headers=None, timeout=None, auth=None):
        return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(20, read=60), auth=auth, transport=transport)

    return Client(sse_client(url, headers=headers, timeout=20, httpx_client_factory=factory), mode="legacy")


def client(url, mode="auto", key=KEY, transport=None):
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {key}", "X-User": "alice"},
        timeout=httpx2.Timeout(20, read=60),
        transport=transport,
    )
    return Client(streamable_http_client(url, http_client=http), mode=mode)


async def exercise(c, prefix=""):
    tools = {t.name: t for t in (await c.list_tools()).tools if t.name.startswith(prefix)}
    assert set(tools) == {prefix + t for t in TOOLS}
    get = tools[prefix + "getPet"]
    assert get.input_schema["properties"]["petId"]["type"] == "integer"
    assert get.input_schema["required"] == ["petId"]
    assert "X-Trace-Id" in get.input_schema["properties"]
    assert get.output_schema["properties"]["name"]["type"] == "string"
    # The body's properties are arguments of their own.
    add = tools[prefix + "addPet"].input_schema
    assert add["required"] == ["name"] and set(add["properties"]) == {"name", "tag"}

    one = await c.call_tool(prefix + "getPet", {"petId": 1, "X-Trace-Id": "t-1"})
    assert not one.is_error
    assert one.structured_content == {"id": 1, "name": "Rex", "tag": "dog"}
    cats = await c.call_tool(prefix + "listPets", {"tag": "cat", "limit": 1})
    assert not cats.is_error
    assert cats.structured_content == {"result": [{"id": 2, "name": "Tom", "tag": "cat"}]}
    added = await c.call_tool(prefix + "addPet", {"name": "Ada", "tag": "owl"})
    assert not added.is_error and added.structured_content["name"] == "Ada"
    gone = await c.call_tool(prefix + "delete_pets_petId", {"petId": added.structured_content["id"]})
    assert not gone.is_error
    missing = await c.call_tool(prefix + "getPet", {"petId": 999})
    assert missing.is_error
    assert missing.content[0].text.startswith("HTTP 404")
    assert "no such pet" in missing.content[0].text
    invalid = await c.call_tool(prefix + "addPet", {"tag": "x"})
    assert invalid.is_error and "`name`" in invalid.content[0].text


@pytest.mark.anyio
async def test_default_mode_discovers_the_stateless_revision():
    async with client(A + "/mcp/pets") as c:
        assert c.protocol_version == "2026-07-28"
        assert c.server_info.name == "pets"
        await exercise(c)


@pytest.mark.anyio
async def test_the_handshake_revision_with_a_session():
    async with client(A + "/mcp/pets", mode="legacy") as c:
        assert c.protocol_version == "2025-11-25"
        assert c.server_capabilities.tools is not None
        await exercise(c)


@pytest.mark.anyio
async def test_a_session_opened_on_one_instance_continues_on_the_other():
    ports = [httpx2.URL(A).port, httpx2.URL(B).port]
    t = Alternating(ports)
    async with client(A + "/mcp/pets", mode="legacy", transport=t) as c:
        await exercise(c)
    assert set(t.used) == set(ports) and t.n >= 8


@pytest.mark.anyio
async def test_the_combined_endpoint_prefixes_tools_with_their_server():
    async with client(B + "/mcp") as c:
        tools = {t.name for t in (await c.list_tools()).tools}
        assert {"pets__getPet", "metered__getPet"} <= tools
        await exercise(c, prefix="pets__")


@pytest.mark.anyio
async def test_a_key_sees_and_calls_only_its_tools():
    async with client(A + "/mcp/pets", key=LIMITED_KEY) as c:
        tools = {t.name for t in (await c.list_tools()).tools}
        assert tools == {"getPet", "listPets"}
        with pytest.raises(Exception) as e:
            await c.call_tool("addPet", {"name": "Sly"})
        assert "Unknown tool" in str(e.value)
    if os.environ.get("MCP_REMOTE") == "1":
        async with client(A + "/mcp", key=LIMITED_KEY) as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            assert tools == {"pets__getPet", "pets__listPets", "calc__add"}
            with pytest.raises(Exception):
                await c.call_tool("calc__shout", {"text": "x"})


@pytest.mark.anyio
async def test_a_remote_mcp_server_is_fronted_and_combined_with_an_openapi_one():
    if os.environ.get("MCP_REMOTE") != "1":
        pytest.skip("no remote server in this run")
    for mode in ("auto", "legacy"):
        async with client(A + "/mcp/calc", mode=mode) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert set(tools) == {"add", "shout"}  # admin_reset is excluded
            assert tools["add"].input_schema["properties"]["a"]["type"] == "integer"
            r = await c.call_tool("add", {"a": 2, "b": 3})
            assert not r.is_error and r.structured_content == {"result": 5}
    async with client(B + "/mcp") as c:
        tools = {t.name for t in (await c.list_tools()).tools}
        assert {"calc__add", "calc__shout", "pets__getPet"} <= tools
        assert "calc__admin_reset" not in tools
        r = await c.call_tool("calc__shout", {"text": "hi"})
        assert r.content[0].text == "HI"
        pet = await c.call_tool("pets__getPet", {"petId": 2})
        assert pet.structured_content["name"] == "Tom"
        with pytest.raises(Exception) as e:
            await c.call_tool("calc__admin_reset", {})
        assert "Unknown tool" in str(e.value)


@pytest.mark.anyio
async def test_the_legacy_sse_transport():
    async with sse(A + "/mcp/pets/sse") as c:
        await exercise(c)


@pytest.mark.anyio
async def test_legacy_sse_messages_posted_to_another_instance():
    if os.environ.get("MCP_RELAY") != "1":
        pytest.skip("needs the instances to share Redis")
    t = StreamHereMessagesThere(httpx2.URL(A).port, httpx2.URL(B).port)
    async with sse(A + "/mcp/pets/sse", transport=t) as c:
        await exercise(c)
    assert t.posts >= 8


@pytest.fixture
def anyio_backend():
    return "asyncio"
