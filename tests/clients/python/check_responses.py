"""Drives Switchyard's Responses door with the official OpenAI Python library, unmodified.

Run by tests/all/clients.rs against a gateway over the simulated provider, with SWITCHYARD_URL
(the gateway's /v1) and SWITCHYARD_KEY (a tenant that may use deepseek-v4-flash, with `auto` as
an alias) set.
"""
import json
import os
import sys

import openai

url = os.environ["SWITCHYARD_URL"]
key = os.environ["SWITCHYARD_KEY"]
client = openai.OpenAI(base_url=url, api_key=key, max_retries=0)


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def simulated(text, what):
    check(isinstance(text, str) and text.startswith("[simulated deepseek-v4-flash]"), f"{what}: {text!r}")


# A whole response, with the gateway's headers readable through the raw response.
raw = client.responses.with_raw_response.create(model="auto", input="hello", instructions="You are terse.")
response = raw.parse()
check(raw.headers.get("x-switchyard-model") == "deepseek-v4-flash", "routing header")
check(response.object == "response" and response.status == "completed", f"response {response!r}")
check(response.id.startswith("resp_"), f"id {response.id!r}")
check([item.type for item in response.output] == ["message"], f"output {response.output!r}")
simulated(response.output_text, "output_text")
check(response.usage.input_tokens > 0 and response.usage.output_tokens > 0, f"usage {response.usage!r}")
check(response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens, "total_tokens")
check(response.store is False, f"stateless: store {response.store!r}")
check(response.instructions == "You are terse.", f"instructions echoed {response.instructions!r}")

# The same through the root path (no /v1), as DeepSeek serves it.
bare = openai.OpenAI(base_url=url.removesuffix("/v1"), api_key=key, max_retries=0)
simulated(bare.responses.create(model="auto", input="hello").output_text, "/responses")

# Reasoning: an effort turns it on, and a reasoning item comes first.
thought = client.responses.create(model="auto", input="hello", reasoning={"effort": "low"})
check([item.type for item in thought.output] == ["reasoning", "message"], f"reasoning output {thought.output!r}")

# create(stream=True): typed events, numbered, ending with response.completed.
events = []
pieces = []
for event in client.responses.create(model="auto", input=[{"role": "user", "content": "hello"}], stream=True):
    events.append(event)
    if event.type == "response.output_text.delta":
        pieces.append(event.delta)
types = [e.type for e in events]
check(types[:2] == ["response.created", "response.in_progress"], f"first events {types!r}")
check(types[-1] == "response.completed", f"last event {types!r}")
check([e.sequence_number for e in events] == list(range(len(events))), "sequence numbers")
check(len(pieces) > 3, f"text arrived in pieces {pieces!r}")
simulated("".join(pieces), "streamed text")
check(events[-1].response.output_text == "".join(pieces), "completed carries the text")
check(events[-1].response.usage.output_tokens > 0, "completed carries usage")

# responses.stream(): the helper's accumulated final response.
with client.responses.stream(model="auto", input="hello") as stream:
    deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
    final = stream.get_final_response()
check(final.status == "completed", f"final status {final.status!r}")
check(final.output_text == "".join(deltas), "final response = streamed text")
simulated(final.output_text, "final text")

# A function-call round trip, with reasoning on so the reasoning item goes back too.
tools = [
    {
        "type": "function",
        "name": "exec_command",
        "description": "Runs a shell command.",
        "parameters": {
            "type": "object",
            "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}},
            "required": ["cmd"],
        },
        "strict": False,
    }
]
ask = [{"role": "user", "content": "Use the exec_command tool to run `echo hi-from-tool`"}]
with client.responses.stream(model="auto", input=ask, tools=tools, reasoning={"effort": "low"}) as stream:
    call = stream.get_final_response()
check([item.type for item in call.output] == ["reasoning", "function_call"], f"call output {call.output!r}")
fc = call.output[1]
check(fc.name == "exec_command" and fc.call_id, f"function_call {fc!r}")
check(json.loads(fc.arguments) == {"cmd": "echo hi-from-tool"}, f"arguments {fc.arguments!r}")
answer = client.responses.create(
    model="auto",
    tools=tools,
    reasoning={"effort": "low"},
    input=ask + call.output + [{"type": "function_call_output", "call_id": fc.call_id, "output": "hi-from-tool\n"}],
)
check(answer.status == "completed", f"answer status {answer.status!r}")
check("hi-from-tool" in answer.output_text, f"answer quotes the tool {answer.output_text!r}")
# The same turn without streaming gives the same call.
whole = client.responses.create(model="auto", input=ask, tools=tools)
calls = [item for item in whole.output if item.type == "function_call"]
check(len(calls) == 1 and calls[0].arguments == fc.arguments, f"whole call {whole.output!r}")


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


e = expect(
    openai.BadRequestError,
    lambda: client.responses.create(model="auto", input="again", previous_response_id=response.id),
    "previous_response_id",
)
check(isinstance(e.body, dict) and e.body.get("param") == "previous_response_id", f"param named {e.body!r}")
bad_key = openai.OpenAI(base_url=url, api_key="sk-not-a-key", max_retries=0)
expect(openai.AuthenticationError, lambda: bad_key.responses.create(model="auto", input="x"), "bad key")
expect(openai.NotFoundError, lambda: client.responses.create(model="gpt-9000", input="x"), "unknown model")
expect(openai.PermissionDeniedError, lambda: client.responses.create(model="deepseek-v4-pro", input="x"), "model not allowed")

print("all client checks passed")
