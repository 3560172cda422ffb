"""LangChain for Python (`langchain-openai`, `langchain-anthropic`) through Tollgate, unchanged,
against an OpenAI-compatible ("chat"), an Anthropic ("claude") and a Gemini ("gemini") backend:
streams, usage, structured output by function calling and JSON mode. Run by tests/e2e/sdk.rs."""
import os

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

ROOT = os.environ["TOLLGATE_ROOT_URL"]
KEY = os.environ["TOLLGATE_KEY"]
BACKENDS = ["chat", "claude", "gemini"]


class Answer(BaseModel):
    answer: str


def openai_chat(model):
    return ChatOpenAI(model=model, api_key=KEY, base_url=ROOT + "/v1", max_retries=0, stream_usage=True)


def anthropic_chat(model):
    return ChatAnthropic(model=model, api_key=KEY, base_url=ROOT, max_retries=0)


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_stream_with_usage(model):
    last = None
    for chunk in openai_chat(model).stream("Hello"):
        last = chunk if last is None else last + chunk
    assert last.content
    assert last.usage_metadata["input_tokens"] > 0 and last.usage_metadata["output_tokens"] > 0


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_structured_output_by_function_calling(model):
    r = openai_chat(model).with_structured_output(Answer, method="function_calling").invoke("Answer.")
    assert isinstance(r.answer, str)


@pytest.mark.parametrize("model", BACKENDS)
def test_openai_json_mode(model):
    r = openai_chat(model).with_structured_output(None, method="json_mode").invoke("Answer in JSON.")
    assert isinstance(r, dict)


@pytest.mark.parametrize("model", BACKENDS)
def test_anthropic_stream_reports_input_usage(model):
    last = None
    for chunk in anthropic_chat(model).stream("Hello"):
        last = chunk if last is None else last + chunk
    assert last.content
    assert last.usage_metadata["input_tokens"] > 0
