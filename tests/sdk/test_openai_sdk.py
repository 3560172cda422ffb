"""The official `openai` Python SDK against Tollgate (run by tests/e2e/sdk.rs)."""
import os

import openai
import pytest

BASE = os.environ["TOLLGATE_BASE_URL"]
KEY = os.environ["TOLLGATE_KEY"]


def client(key=KEY):
    return openai.OpenAI(base_url=BASE, api_key=key, max_retries=0, timeout=20)


def test_non_stream_chat():
    r = client().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert r.choices[0].message.content == "Hello from the Tollgate mock"
    assert r.usage.completion_tokens == 5
    assert r.model == "up"


def test_stream_chat_without_usage():
    chunks = list(
        client().chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=5
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the Tollgate mock"
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "the injected usage chunk is stripped"


def test_stream_chat_with_usage():
    chunks = list(
        client().chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            max_tokens=5,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage.completion_tokens == 5
    assert chunks[-1].choices == []


def test_embeddings():
    r = client().embeddings.create(model="chat", input=["a", "b"])
    assert len(r.data) == 2


def test_models_list():
    ids = [m.id for m in client().models.list()]
    assert "chat" in ids and "cut" in ids


def test_error_classes():
    with pytest.raises(openai.AuthenticationError):
        client("tg-wrong").chat.completions.create(model="chat", messages=[])
    with pytest.raises(openai.NotFoundError) as e:
        client().chat.completions.create(model="nope", messages=[])
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client().chat.completions.create(model="chat", messages=[], max_tokens=-1)
    with pytest.raises(openai.InternalServerError):
        client().chat.completions.create(model="down", messages=[])


def test_cut_stream_raises():
    stream = client().chat.completions.create(
        model="cut", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received, "content arrived before the failure"
