"""The official `openai` SDK over Tollgate's HTTPS listener, trusting a CA the test made
(tests/e2e/https.rs)."""
import os

import ssl

import openai

URL = os.environ["TOLLGATE_HTTPS_URL"]
CA = os.environ["TOLLGATE_CA_FILE"]
KEY = os.environ["TOLLGATE_KEY"]


def client(verify):
    # The SDK's own HTTP client class, which takes the transport's options (a CA to trust).
    http = openai.DefaultHttpxClient(verify=verify, timeout=20)
    return openai.OpenAI(base_url=URL, api_key=KEY, max_retries=0, http_client=http)


def test_stream_over_tls():
    stream = client(ssl.create_default_context(cafile=CA)).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
    assert text.startswith("Hello from the Tollgate mock model")
    assert usage is not None and usage.completion_tokens > 0


def test_an_untrusted_certificate_is_refused():
    bad = client(True)
    try:
        bad.models.list()
    except openai.APIConnectionError:
        return
    raise AssertionError("the system CAs do not know the test CA")
