"""Drives Switchyard with the official OpenAI Python library, unmodified.

Run by tests/all/clients.rs with SWITCHYARD_URL, SWITCHYARD_KEY (a working tenant) and
SWITCHYARD_BROKEN_KEY (a tenant whose policy traps) set.
"""
import os
import sys

import openai

url = os.environ["SWITCHYARD_URL"]
client = openai.OpenAI(base_url=url, api_key=os.environ["SWITCHYARD_KEY"], max_retries=0)


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


# A completion, with the routing header readable through the raw response.
raw = client.chat.completions.with_raw_response.create(
    model="auto", messages=[{"role": "user", "content": "hello"}]
)
completion = raw.parse()
check(raw.headers.get("x-switchyard-model") == "deepseek-v4-flash", "routing header")
check(completion.choices[0].message.content == "Hello from the mock", "completion content")
check(completion.usage.prompt_tokens == 100, "usage")

# Streaming: the chunks arrive one by one and reassemble the text.
pieces = []
with client.chat.completions.create(
    model="auto", messages=[{"role": "user", "content": "hello"}], stream=True
) as stream:
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
check("".join(pieces) == "Hello from the stream", f"stream text {pieces!r}")
check(len(pieces) == 4, "stream arrived in chunks")

# Model listing.
ids = [m.id for m in client.models.list()]
check(ids == ["deepseek-v4-flash", "auto"], f"models {ids!r}")

# Errors surface as the library's exception classes.
def expect(exc, fn, what):
    try:
        fn()
    except exc as e:
        check(getattr(e, "status_code", None) is not None, f"{what}: status on the exception")
        return e
    except Exception as e:  # noqa: BLE001
        check(False, f"{what}: expected {exc.__name__}, got {type(e).__name__}: {e}")
    check(False, f"{what}: expected {exc.__name__}, got no error")

bad_key = openai.OpenAI(base_url=url, api_key="sk-not-a-key", max_retries=0)
expect(openai.AuthenticationError, lambda: bad_key.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}]), "bad key")
e = expect(openai.BadRequestError, lambda: client.chat.completions.create(model="auto", messages=[]), "empty messages")
check(e.body.get("param") == "messages" if isinstance(e.body, dict) else True, "param named")
expect(openai.PermissionDeniedError, lambda: client.chat.completions.create(model="deepseek-v4-pro", messages=[{"role": "user", "content": "x"}]), "model not allowed")
expect(openai.NotFoundError, lambda: client.chat.completions.create(model="gpt-9000", messages=[{"role": "user", "content": "x"}]), "unknown model")
broken = openai.OpenAI(base_url=url, api_key=os.environ["SWITCHYARD_BROKEN_KEY"], max_retries=0)
expect(openai.InternalServerError, lambda: broken.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}]), "policy failure")

print("all client checks passed")
