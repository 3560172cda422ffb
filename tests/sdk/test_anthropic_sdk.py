"""The official `anthropic` Python SDK against Tollgate's /v1/messages, served by an
Anthropic backend ("claude") and by an OpenAI-compatible one ("gpt"); and the `openai` SDK
against the Anthropic backend. Run by tests/e2e/sdk.rs, which also checks what the backends
received."""
import base64
import os

import anthropic
import openai
import pytest

ROOT = os.environ["TOLLGATE_ROOT_URL"]
KEY = os.environ["TOLLGATE_KEY"]
BACKENDS = ["claude", "gpt"]
TEXT = "Hello from the Tollgate mock model"
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
# A 1x1 PNG.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


def claude(key=KEY):
    return anthropic.Anthropic(base_url=ROOT, api_key=key, max_retries=0, timeout=20)


def hello(model, **extra):
    return dict(
        model=model,
        max_tokens=6,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello"}],
        **extra,
    )


@pytest.mark.parametrize("model", BACKENDS)
def test_non_stream(model):
    m = claude().messages.create(**hello(model))
    assert m.type == "message"
    assert m.content[0].type == "text"
    assert m.content[0].text == TEXT
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens == 6
    assert m.usage.input_tokens > 0


@pytest.mark.parametrize("model", BACKENDS)
def test_stream(model):
    with claude().messages.stream(**hello(model)) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.content[0].text == TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 6


@pytest.mark.parametrize("model", BACKENDS)
@pytest.mark.parametrize("streamed", [False, True])
def test_tool_use_round_trip(model, streamed):
    request = dict(
        model=model,
        max_tokens=50,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    if streamed:
        with claude().messages.stream(**request) as stream:
            m = stream.get_final_message()
    else:
        m = claude().messages.create(**request)
    assert m.stop_reason == "tool_use"
    call = [b for b in m.content if b.type == "tool_use"][0]
    assert call.name == "get_weather"
    assert call.input == {"city": "mock", "days": 1}
    # Answer the tool: the model speaks again.
    follow = claude().messages.create(
        model=model,
        max_tokens=6,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
            },
        ],
    )
    assert follow.stop_reason == "end_turn"
    assert follow.content[0].text == TEXT


@pytest.mark.parametrize("model", BACKENDS)
def test_image_input(model):
    m = claude().messages.create(
        model=model,
        max_tokens=6,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
                    {"type": "text", "text": "IMAGE-CHECK what is this?"},
                ],
            }
        ],
    )
    assert m.content[0].text == TEXT


def test_count_tokens():
    r = claude().messages.count_tokens(model="claude", messages=[{"role": "user", "content": "Hello there"}])
    assert 0 < r.input_tokens < 20


def test_error_classes():
    with pytest.raises(anthropic.AuthenticationError) as e:
        claude(key="wrong").messages.create(**hello("claude"))
    assert e.value.status_code == 401
    with pytest.raises(anthropic.NotFoundError):
        claude().messages.create(**hello("no-such-model"))
    with pytest.raises(anthropic.BadRequestError) as e:
        claude().messages.create(**hello("gpt", thinking={"type": "enabled", "budget_tokens": 1024}))
    assert "thinking" in str(e.value)
    with pytest.raises(anthropic.OverloadedError):
        claude().messages.create(**hello("busy"))
    for model in ["cut-claude", "cut-gpt"]:
        with pytest.raises(anthropic.APIStatusError):
            with claude().messages.stream(**hello(model)) as stream:
                "".join(stream.text_stream)


def gpt_client():
    return openai.OpenAI(base_url=ROOT + "/v1", api_key=KEY, max_retries=0, timeout=20)


def test_openai_sdk_stream_from_anthropic_backend():
    chunks = list(
        gpt_client().chat.completions.create(
            model="claude",
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            stream=True,
            max_tokens=6,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    assert chunks[-1].usage.completion_tokens == 6
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_openai_sdk_tools_from_anthropic_backend():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER["input_schema"]}}]
    r = gpt_client().chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Weather?"}], tools=tools, max_tokens=50
    )
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"mock","days":1}'
    stream = gpt_client().chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "Weather?"}], tools=tools, max_tokens=50, stream=True
    )
    args, names = "", []
    for c in stream:
        for d in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            if d.function.name:
                names.append(d.function.name)
            args += d.function.arguments or ""
    assert names == ["get_weather"]
    assert args == '{"city":"mock","days":1}'
