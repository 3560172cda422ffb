"""A stream cut after 40 tokens, finished on a fallback (`stream_recovery = "continue"`),
reaches the official `openai` and `anthropic` SDKs as one complete, well-formed answer: the
cut prefix plus the fallback's continuation, one finish, usage counting both attempts. Run by
tests/e2e/recovery.rs, which sets the gateway up and checks its access log."""
import os

import anthropic
import openai
import pytest

ROOT = os.environ["TOLLGATE_ROOT_URL"]
KEY = os.environ["TOLLGATE_KEY"]
EXPECTED = os.environ["TOLLGATE_EXPECTED_TEXT"]
# Models: the cut primary is OpenAI-compatible; the fallback speaks each dialect in turn.
MODELS = ["recover-openai", "recover-anthropic"]
PROMPT = [{"role": "user", "content": "Tell me a long story"}]


@pytest.mark.parametrize("model", MODELS)
def test_openai_sdk_gets_one_complete_stream(model):
    client = openai.OpenAI(base_url=ROOT + "/v1", api_key=KEY, max_retries=0, timeout=20)
    stream = client.chat.completions.create(
        model=model,
        messages=PROMPT,
        max_tokens=80,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, ids, finishes, usage = "", set(), [], None
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason is not None:
                finishes.append(choice.finish_reason)
    assert text == EXPECTED
    assert finishes == ["stop"]
    assert len(ids) == 1, ids
    assert usage is not None and usage.completion_tokens > 40
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("model", MODELS)
def test_anthropic_sdk_gets_one_complete_message(model):
    client = anthropic.Anthropic(base_url=ROOT, api_key=KEY, max_retries=0, timeout=20)
    with client.messages.stream(model=model, max_tokens=80, messages=PROMPT) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == EXPECTED
    assert final.stop_reason == "end_turn"
    assert [b.type for b in final.content] == ["text"]
    assert final.content[0].text == EXPECTED
    assert final.usage.output_tokens > 40
