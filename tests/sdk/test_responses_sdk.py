"""The official `openai` SDK's Responses API (`client.responses.create` / `.stream`) through
Tollgate: passed through to a backend serving Responses ("native"), and translated for an
OpenAI-compatible backend without it ("chat"), an Anthropic backend ("claude") and a Gemini
backend ("gemini"). Run by tests/e2e/responses.rs, which checks what the backends received
and what was charged."""
import json
import os

import openai
import pytest

ROOT = os.environ["TOLLGATE_ROOT_URL"]
KEY = os.environ["TOLLGATE_KEY"]
TEXT = "Hello from the Tollgate mock model"
BACKENDS = ["native", "chat", "claude", "gemini"]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}


def client():
    return openai.OpenAI(base_url=ROOT + "/v1", api_key=KEY, max_retries=0, timeout=20)


@pytest.mark.parametrize("model", BACKENDS)
def test_create_text(model):
    r = client().responses.create(model=model, instructions="Be brief.", input="Hello", max_output_tokens=6)
    assert r.status == "completed"
    assert r.output_text == TEXT
    assert r.usage.output_tokens == 6
    assert r.usage.input_tokens > 0


@pytest.mark.parametrize("model", BACKENDS)
def test_stream_text(model):
    deltas = []
    with client().responses.stream(
        model=model, input=[{"role": "user", "content": "Hello"}], max_output_tokens=6
    ) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == TEXT
    assert final.output_text == TEXT
    assert final.usage.output_tokens == 6


@pytest.mark.parametrize("model", BACKENDS)
@pytest.mark.parametrize("streamed", [False, True])
def test_function_call_round_trip(model, streamed):
    request = dict(model=model, input=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER])
    if streamed:
        args = []
        with client().responses.stream(**request) as stream:
            for event in stream:
                if event.type == "response.function_call_arguments.delta":
                    args.append(event.delta)
            r = stream.get_final_response()
        assert json.loads("".join(args)) == {"city": "mock", "days": 1}
    else:
        r = client().responses.create(**request)
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "mock", "days": 1}
    follow = client().responses.create(
        model=model,
        tools=[WEATHER],
        max_output_tokens=6,
        input=request["input"]
        + [
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature": 21}'},
        ],
    )
    assert follow.output_text == TEXT


@pytest.mark.parametrize("model", BACKENDS)
def test_json_schema_output(model):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    r = client().responses.create(
        model=model,
        input="Answer in JSON",
        max_output_tokens=6,
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema}},
    )
    assert json.loads(r.output_text) == {"answer": TEXT}


def test_untranslatable_fields_are_refused_by_name():
    for extra, name in [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"input": [{"type": "item_reference", "id": "msg_unknown"}]}, "input[0].id"),
        ({"tools": [{"type": "web_search"}]}, "web_search"),
    ]:
        with pytest.raises(openai.BadRequestError) as e:
            client().responses.create(model="chat", **{"input": "hi", **extra})
        assert name in str(e.value)
        assert e.value.code == "untranslatable_field"
    # A backend serving Responses takes them as they are.
    r = client().responses.create(model="native", input="hi", max_output_tokens=6, store=True)
    assert r.output_text == TEXT


TRANSLATED = ["chat", "claude", "gemini"]


@pytest.mark.parametrize("model", TRANSLATED)
def test_a_conversation_continues_by_previous_response_id_on_translated_routes(model):
    first = client().responses.create(model=model, input="My name is Ada.", max_output_tokens=6)
    second = client().responses.create(
        model=model, previous_response_id=first.id, input="What is my name?", max_output_tokens=6
    )
    assert second.output_text == TEXT
    # Stored: retrieved and deleted as on OpenAI's API.
    assert client().responses.retrieve(first.id).id == first.id
    client().responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client().responses.retrieve(first.id)


def test_a_streamed_turn_is_stored_and_its_items_referenced():
    with client().responses.stream(model="chat", input="Remember 42.", max_output_tokens=6) as s:
        for _ in s:
            pass
        first = s.get_final_response()
    item = first.output[0].id
    # The Vercel AI SDK's way: the previous answer by item reference, no previous_response_id.
    r = client().responses.create(
        model="chat",
        input=[
            {"role": "user", "content": "Remember 42."},
            {"type": "item_reference", "id": item},
            {"role": "user", "content": "What did I ask you to remember?"},
        ],
        max_output_tokens=6,
    )
    assert r.output_text == TEXT
