"""Guardrails seen through the official `openai` and `anthropic` SDKs (run by
tests/e2e/guardrails.rs): findings split across stream events at every byte position reach
the client masked, in content, reasoning and tool-call arguments, in both dialects; a
`block` mid-stream raises in the SDK; a refused request is a 400 the SDK raises on."""
import json
import os

import anthropic
import openai
import pytest

ROOT = os.environ["TOLLGATE_ROOT_URL"]
KEY = os.environ["TOLLGATE_KEY"]
TEXT = "Contact jane.doe@example.com, Voldemort knows."
MASKED = "Contact [EMAIL], [REDACTED] knows."
ARGS = '{"to": "jane.doe@example.com"}'
MASKED_ARGS = '{"to": "[EMAIL]"}'


def oai():
    return openai.OpenAI(base_url=ROOT + "/v1", api_key=KEY, max_retries=0, timeout=20)


def claude():
    return anthropic.Anthropic(base_url=ROOT, api_key=KEY, max_retries=0, timeout=20)


def reply(**parts):
    return {"x-mock-reply": json.dumps(parts)}


def splits(text):
    return [[text[:i], text[i:]] for i in range(1, len(text))]


def openai_stream(model, headers):
    return list(
        oai().chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_headers=headers,
        )
    )


def test_openai_stream_content_is_masked_at_every_split():
    for parts in splits(TEXT):
        chunks = openai_stream("masked", reply(content=parts))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == MASKED, parts
        assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_stream_reasoning_and_tool_arguments_are_masked_at_every_split():
    for parts in splits(ARGS):
        headers = reply(reasoning=["I will mail jane.", "doe@example.com"], tool={"name": "mail", "arguments": parts})
        chunks = openai_stream("masked", headers)
        args = "".join(
            c.choices[0].delta.tool_calls[0].function.arguments or ""
            for c in chunks
            if c.choices and c.choices[0].delta.tool_calls
        )
        assert args == MASKED_ARGS, parts
        reasoning = "".join(
            getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
        )
        assert reasoning == "I will mail [EMAIL]", parts


@pytest.mark.parametrize("model", ["masked-a", "masked-x"])
def test_anthropic_stream_text_and_tool_input_are_masked_at_every_split(model):
    for parts, args in zip(splits(TEXT), splits(ARGS) * 2):
        headers = reply(content=parts, tool={"name": "mail", "arguments": args})
        with claude().messages.stream(
            model=model,
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"name": "mail", "input_schema": {"type": "object", "properties": {"to": {"type": "string"}}}}],
            extra_headers=headers,
        ) as s:
            message = s.get_final_message()
        text = "".join(b.text for b in message.content if b.type == "text")
        assert text == MASKED, (model, parts)
        tool = [b for b in message.content if b.type == "tool_use"][0]
        assert tool.input == {"to": "[EMAIL]"}, (model, args)


def test_anthropic_thinking_is_masked():
    headers = reply(reasoning=["mail jane.doe@exa", "mple.com later"], content=["ok"])
    with claude().messages.stream(
        model="masked-a", max_tokens=50, messages=[{"role": "user", "content": "hi"}], extra_headers=headers
    ) as s:
        message = s.get_final_message()
    thinking = [b.thinking for b in message.content if b.type == "thinking"]
    assert thinking == ["mail [EMAIL] later"]


def test_a_block_mid_stream_raises_in_both_sdks():
    headers = reply(content=["All fine. ", "The launch", " codes are 0000."])
    seen = []
    with pytest.raises(openai.APIError) as e:
        for c in oai().chat.completions.create(
            model="halt", messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=headers
        ):
            if c.choices:
                seen.append(c.choices[0].delta.content or "")
    assert "launch" in str(e.value) and "0000" not in "".join(seen)
    # "The " could not begin a match and went out at once; "launch" waited and was refused.
    assert "".join(seen) == "All fine. The "
    with pytest.raises(anthropic.APIError) as e:
        with claude().messages.stream(
            model="halt-a", max_tokens=50, messages=[{"role": "user", "content": "hi"}], extra_headers=headers
        ) as s:
            for _ in s:
                pass
    assert "content policy" in str(e.value)


def test_a_refused_request_is_a_bad_request_in_both_sdks():
    with pytest.raises(openai.BadRequestError) as e:
        oai().chat.completions.create(
            model="block-cards", messages=[{"role": "user", "content": "card 4111 1111 1111 1111"}]
        )
    assert e.value.code == "content_policy_violation"
    with pytest.raises(anthropic.BadRequestError):
        claude().messages.create(
            model="block-cards-a", max_tokens=10, messages=[{"role": "user", "content": "card 4111111111111111"}]
        )
