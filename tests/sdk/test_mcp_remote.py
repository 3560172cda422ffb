"""The official `mcp` Python SDK as a client of a proxied remote MCP server (run by
tests/e2e/mcp_remote.rs): the conformance suite's reference server at MCP_URL, a relay that
sends each new connection to the other of two gateway instances. The server's own requests
(sampling, elicitation) are answered by the client's callbacks, whichever instance they
reach; progress, log messages, resources and prompts pass through."""
import os
import re

import httpx2
import pytest
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client

URL = os.environ["MCP_URL"]
KEY = os.environ["TOLLGATE_KEY"]


async def sampling(context, params):
    prompt = params.messages[0].content.text
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"python read: {prompt}"),
        model="client-model",
    )


async def elicitation(context, params):
    return types.ElicitResult(action="accept", content={"response": "python says yes"})


def client(**callbacks):
    # A fresh connection per request: the relay alternates instances by connection.
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=httpx2.Timeout(20, read=60),
        limits=httpx2.Limits(max_keepalive_connections=0),
    )
    return Client(streamable_http_client(URL, http_client=http), **callbacks)


def text(result):
    return "".join(getattr(c, "text", "") for c in result.content)


# The reference server checks a sampling answer against a schema that wants its `method` echoed
# (its test tool's quirk), so it may report that instead of the text: either way the client's
# answer reached the server that asked.
SAMPLED = re.compile(
    r'^(LLM response: python read: two plus two|Sampling not supported or error: .*expected \\"sampling/createMessage\\")',
    re.S,
)


@pytest.mark.anyio
async def test_sampling_is_answered_by_the_client():
    asked = []

    async def counted(context, params):
        asked.append(params)
        return await sampling(context, params)

    async with client(sampling_callback=counted) as c:
        r = await c.call_tool("test_sampling", {"prompt": "two plus two"})
        assert SAMPLED.match(text(r)), text(r)
        assert len(asked) == 1


@pytest.mark.anyio
async def test_elicitation_is_answered_by_the_client():
    async with client(elicitation_callback=elicitation) as c:
        r = await c.call_tool("test_elicitation", {"message": "proceed?"})
        assert "action=accept" in text(r) and "python says yes" in text(r)


@pytest.mark.anyio
async def test_progress_and_log_messages_arrive_during_the_call():
    logs = []

    async def on_log(params):
        logs.append(params)

    async with client(logging_callback=on_log) as c:
        seen = []

        async def on_progress(progress, total, message):
            seen.append(progress)

        await c.set_logging_level("debug")
        await c.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
        assert seen == [0, 50, 100]
        await c.call_tool("test_tool_with_logging", {})
        assert len(logs) >= 3


@pytest.mark.anyio
async def test_resources_prompts_and_the_tool_filter():
    async with client() as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert "test_sampling" in names and "test_reconnection" not in names
        uris = {str(r.uri) for r in (await c.list_resources()).resources}
        assert "test://static-text" in uris
        read = await c.read_resource("test://static-text")
        assert read.contents[0].text
        prompts = {p.name for p in (await c.list_prompts()).prompts}
        assert "test_simple_prompt" in prompts
        got = await c.get_prompt("test_prompt_with_arguments", {"arg1": "left", "arg2": "right"})
        assert "left" in str(got.messages)


@pytest.fixture
def anyio_backend():
    return "asyncio"
