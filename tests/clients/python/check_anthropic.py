"""Drives Switchyard's Anthropic Messages door with the official Anthropic Python library, unmodified.

Run by tests/all/clients.rs against a gateway over the simulated provider, with SWITCHYARD_ROOT
(the gateway's root URL: the library appends /v1/messages itself), SWITCHYARD_KEY (a tenant that
may use deepseek-v4-flash, with `claude-*` as an alias) and SWITCHYARD_LIMITED_KEY (the same, at
one request per minute) set.
"""
import os
import sys

import anthropic

root = os.environ["SWITCHYARD_ROOT"]
key = os.environ["SWITCHYARD_KEY"]
client = anthropic.Anthropic(base_url=root, api_key=key, max_retries=0)
MODEL = "claude-sonnet-4-5"
HI = [{"role": "user", "content": "hello"}]


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def simulated(text, what):
    check(isinstance(text, str) and text.startswith("[simulated deepseek-v4-flash]"), f"{what}: {text!r}")


# A whole message, with the gateway's headers readable through the raw response.
raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=1024, messages=HI)
message = raw.parse()
check(raw.headers.get("x-switchyard-model") == "deepseek-v4-flash", "routing header")
check(raw.headers.get("request-id"), "request-id header")
check(message.type == "message" and message.role == "assistant", f"message {message!r}")
check(message.stop_reason == "end_turn", f"stop_reason {message.stop_reason!r}")
check([b.type for b in message.content] == ["text"], f"blocks {message.content!r}")
simulated(message.content[0].text, "message text")
check(message.usage.input_tokens > 0 and message.usage.output_tokens > 0, f"usage {message.usage!r}")

# A system prompt and thinking: the reply carries a thinking block first.
thought = client.messages.create(
    model=MODEL,
    max_tokens=4096,
    system="You are terse.",
    thinking={"type": "enabled", "budget_tokens": 2048},
    messages=HI,
)
check([b.type for b in thought.content] == ["thinking", "text"], f"thinking blocks {thought.content!r}")
check(thought.content[0].thinking, "thinking text")

# create(stream=True): the raw events, in order.
events = []
pieces = []
with client.messages.create(model=MODEL, max_tokens=1024, messages=HI, stream=True) as stream:
    for event in stream:
        events.append(event.type)
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            pieces.append(event.delta.text)
check(events[0] == "message_start", f"first event {events!r}")
check(events[-2:] == ["message_delta", "message_stop"], f"last events {events!r}")
check(events.count("content_block_start") == 1 and events.count("content_block_stop") == 1, f"one block {events!r}")
check(len(pieces) > 3, f"text arrived in pieces {pieces!r}")
simulated("".join(pieces), "streamed text")

# messages.stream(): the helper's text_stream and its accumulated final message.
with client.messages.stream(model=MODEL, max_tokens=1024, messages=HI) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
simulated(text, "text_stream")
check(final.content[0].text == text, "final message = streamed text")
check(final.stop_reason == "end_turn", f"final stop_reason {final.stop_reason!r}")
check(final.usage.output_tokens > 0, f"final usage {final.usage!r}")

# A tool round trip: the model calls the tool, the result goes back, the model answers.
tools = [
    {
        "name": "Bash",
        "description": "Runs a shell command.",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
            "required": ["command"],
        },
    }
]
ask = [{"role": "user", "content": "Use the Bash tool to run `echo hi-from-tool`"}]
with client.messages.stream(model=MODEL, max_tokens=1024, messages=ask, tools=tools) as stream:
    call = stream.get_final_message()
check(call.stop_reason == "tool_use", f"tool stop_reason {call.stop_reason!r}")
uses = [b for b in call.content if b.type == "tool_use"]
check(len(uses) == 1 and uses[0].name == "Bash", f"tool_use {call.content!r}")
check(uses[0].input == {"command": "echo hi-from-tool"}, f"tool input {uses[0].input!r}")
check(uses[0].id, "tool_use id")
answer = client.messages.create(
    model=MODEL,
    max_tokens=1024,
    tools=tools,
    messages=ask
    + [
        {"role": "assistant", "content": call.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "hi-from-tool"}]},
    ],
)
check(answer.stop_reason == "end_turn", f"answer stop_reason {answer.stop_reason!r}")
check("hi-from-tool" in answer.content[0].text, f"answer quotes the tool {answer.content!r}")
# The same turn without streaming gives the same call.
whole = client.messages.create(model=MODEL, max_tokens=1024, messages=ask, tools=tools)
check([b.type for b in whole.content] == ["tool_use"] and whole.content[0].input == uses[0].input, f"whole tool call {whole.content!r}")

# count_tokens.
count = client.messages.count_tokens(model=MODEL, messages=HI)
check(isinstance(count.input_tokens, int) and count.input_tokens > 0, f"count_tokens {count!r}")
bigger = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hello " * 200}])
check(bigger.input_tokens > count.input_tokens, f"count grows {bigger!r} > {count!r}")


# Errors surface as the library's exception classes, each with the gateway's request id.
def expect(exc, fn, what):
    try:
        fn()
    except exc as e:
        check(getattr(e, "status_code", None) is not None, f"{what}: status on the exception")
        check(bool(e.request_id), f"{what}: request_id on the exception")
        check(isinstance(e.body, dict) and e.body.get("type") == "error", f"{what}: Anthropic error body {e.body!r}")
        return e
    except Exception as e:  # noqa: BLE001
        check(False, f"{what}: expected {exc.__name__}, got {type(e).__name__}: {e}")
    check(False, f"{what}: expected {exc.__name__}, got no error")


bad_key = anthropic.Anthropic(base_url=root, api_key="sk-not-a-key", max_retries=0)
e = expect(anthropic.AuthenticationError, lambda: bad_key.messages.create(model=MODEL, max_tokens=16, messages=HI), "bad key")
check(e.body["error"]["type"] == "authentication_error", f"bad key type {e.body!r}")
# The library insists on max_tokens, so the request without it is sent raw.
e = expect(
    anthropic.BadRequestError,
    lambda: client.post("/v1/messages", cast_to=anthropic.types.Message, body={"model": MODEL, "messages": HI}),
    "missing max_tokens",
)
check(e.body["error"]["type"] == "invalid_request_error", f"missing max_tokens type {e.body!r}")
check("max_tokens" in e.body["error"]["message"], f"missing max_tokens names it {e.body!r}")
expect(
    anthropic.BadRequestError,
    lambda: client.messages.create(model=MODEL, max_tokens=16, messages=[{"role": "robot", "content": "x"}]),
    "malformed message",
)
e = expect(anthropic.NotFoundError, lambda: client.messages.create(model="gpt-9000", max_tokens=16, messages=HI), "unknown model")
check(e.body["error"]["type"] == "not_found_error", f"unknown model type {e.body!r}")
e = expect(
    anthropic.PermissionDeniedError,
    lambda: client.messages.create(model="deepseek-v4-pro", max_tokens=16, messages=HI),
    "model not allowed",
)
check(e.body["error"]["type"] == "permission_error", f"model not allowed type {e.body!r}")
limited = anthropic.Anthropic(base_url=root, api_key=os.environ["SWITCHYARD_LIMITED_KEY"], max_retries=0)
limited.messages.create(model=MODEL, max_tokens=16, messages=HI)
e = expect(anthropic.RateLimitError, lambda: limited.messages.create(model=MODEL, max_tokens=16, messages=HI), "rate limit")
check(e.body["error"]["type"] == "rate_limit_error", f"rate limit type {e.body!r}")
check(e.response.headers.get("retry-after"), "rate limit retry-after")

print("all client checks passed")
