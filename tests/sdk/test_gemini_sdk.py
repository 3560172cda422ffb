"""The official `openai` and `anthropic` Python SDKs against models served by a Gemini
backend (kind = "gemini"): text, streams, a function-call round trip, an image, JSON output,
and upstream errors in each SDK's own classes. Run by tests/e2e/gemini.rs, which also checks
what the Gemini backend received."""
import base64
import json
import os

import anthropic
import openai
import pytest

ROOT = os.environ["TOLLGATE_ROOT_URL"]
KEY = os.environ["TOLLGATE_KEY"]
TEXT = "Hello from the Tollgate mock model"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
}
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


def gpt():
    return openai.OpenAI(base_url=ROOT + "/v1", api_key=KEY, max_retries=0, timeout=20)


def claude():
    return anthropic.Anthropic(base_url=ROOT, api_key=KEY, max_retries=0, timeout=20)


def test_openai_text_and_usage():
    r = gpt().chat.completions.create(
        model="gemini",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        max_tokens=6,
    )
    assert r.choices[0].message.content == TEXT
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 6
    assert r.usage.prompt_tokens > 0


@pytest.mark.parametrize("include_usage", [False, True])
def test_openai_stream(include_usage):
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(
        gpt().chat.completions.create(
            model="gemini", messages=[{"role": "user", "content": "Hello"}], max_tokens=6, stream=True, **extra
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = [c.usage for c in chunks if c.usage]
    if include_usage:
        assert usage and usage[-1].completion_tokens == 6
    else:
        assert usage == [], "the usage chunk goes only to clients that ask for it"


@pytest.mark.parametrize("streamed", [False, True])
def test_openai_tool_call_round_trip(streamed):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": SCHEMA}}]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    if streamed:
        stream = gpt().chat.completions.create(model="gemini", messages=messages, tools=tools, stream=True)
        calls, finish = {}, None
        for c in stream:
            if not c.choices:
                continue
            finish = c.choices[0].finish_reason or finish
            for d in c.choices[0].delta.tool_calls or []:
                entry = calls.setdefault(d.index, {"id": d.id, "name": "", "arguments": ""})
                entry["name"] += d.function.name or ""
                entry["arguments"] += d.function.arguments or ""
        call = calls[0]
        call_id, name, arguments = call["id"], call["name"], call["arguments"]
    else:
        r = gpt().chat.completions.create(model="gemini", messages=messages, tools=tools)
        finish = r.choices[0].finish_reason
        c = r.choices[0].message.tool_calls[0]
        call_id, name, arguments = c.id, c.function.name, c.function.arguments
    assert finish == "tool_calls"
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "mock", "days": 1}
    follow = gpt().chat.completions.create(
        model="gemini",
        tools=tools,
        max_tokens=6,
        messages=messages
        + [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": call_id, "content": '{"temperature": 21}'},
        ],
    )
    assert follow.choices[0].message.content == TEXT


def test_openai_image_and_json_schema():
    r = gpt().chat.completions.create(
        model="gemini",
        max_tokens=6,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}},
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "IMAGE-CHECK what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PIXEL}},
        ]}],
    )
    assert json.loads(r.choices[0].message.content) == {"answer": TEXT}


def test_openai_errors():
    with pytest.raises(openai.RateLimitError) as e:
        gpt().chat.completions.create(model="gemini-busy", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 429
    assert "exhausted" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        gpt().chat.completions.create(model="gemini", messages=[{"role": "user", "content": "hi"}], logprobs=True)
    assert "logprobs" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        gpt().embeddings.create(model="gemini", input="hi")
    assert "Gemini" in str(e.value)


def test_anthropic_text_and_stream():
    m = claude().messages.create(
        model="gemini", max_tokens=6, system="Be brief.", messages=[{"role": "user", "content": "Hello"}]
    )
    assert m.content[0].text == TEXT
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens == 6
    with claude().messages.stream(
        model="gemini", max_tokens=6, messages=[{"role": "user", "content": "Hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 6


@pytest.mark.parametrize("streamed", [False, True])
def test_anthropic_tool_use_round_trip(streamed):
    tool = {"name": "get_weather", "description": "Weather", "input_schema": SCHEMA}
    request = dict(model="gemini", max_tokens=50, tools=[tool], messages=[{"role": "user", "content": "Weather?"}])
    if streamed:
        with claude().messages.stream(**request) as stream:
            m = stream.get_final_message()
    else:
        m = claude().messages.create(**request)
    assert m.stop_reason == "tool_use"
    call = [b for b in m.content if b.type == "tool_use"][0]
    assert call.name == "get_weather"
    assert call.input == {"city": "mock", "days": 1}
    follow = claude().messages.create(
        model="gemini",
        max_tokens=6,
        tools=[tool],
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
        ],
    )
    assert follow.content[0].text == TEXT


def test_anthropic_image_and_errors():
    m = claude().messages.create(
        model="gemini",
        max_tokens=6,
        messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
            {"type": "text", "text": "IMAGE-CHECK what is this?"},
        ]}],
    )
    assert m.content[0].text == TEXT
    with pytest.raises(anthropic.RateLimitError) as e:
        claude().messages.create(model="gemini-busy", max_tokens=6, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 429
