// Drives Switchyard's Responses door with the official OpenAI Node library, unmodified.
// Run by tests/all/clients.rs against a gateway over the simulated provider, with SWITCHYARD_URL
// (the gateway's /v1) and SWITCHYARD_KEY (a tenant that may use deepseek-v4-flash, with `auto` as
// an alias) set.
import OpenAI from "openai";

const baseURL = process.env.SWITCHYARD_URL;
const client = new OpenAI({ baseURL, apiKey: process.env.SWITCHYARD_KEY, maxRetries: 0 });

function check(condition, what) {
  if (!condition) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
}

function simulated(text, what) {
  check(typeof text === "string" && text.startsWith("[simulated deepseek-v4-flash]"), `${what}: ${JSON.stringify(text)}`);
}

// A whole response, with the gateway's headers readable through the raw response.
const { data: response, response: raw } = await client.responses
  .create({ model: "auto", input: "hello" })
  .withResponse();
check(raw.headers.get("x-switchyard-model") === "deepseek-v4-flash", "routing header");
check(response.object === "response" && response.status === "completed", `response ${JSON.stringify(response)}`);
check(JSON.stringify(response.output.map((i) => i.type)) === '["message"]', `output ${JSON.stringify(response.output)}`);
simulated(response.output_text, "output_text");
check(response.usage.input_tokens > 0 && response.usage.output_tokens > 0, `usage ${JSON.stringify(response.usage)}`);

// create({stream: true}): every event, numbered, ending with response.completed.
const events = [];
for await (const event of await client.responses.create({ model: "auto", input: "hello", stream: true })) {
  events.push(event);
}
const types = events.map((e) => e.type);
check(types[0] === "response.created" && types[1] === "response.in_progress", `first events ${types}`);
check(types.at(-1) === "response.completed", `last event ${types}`);
check(events.every((e, i) => e.sequence_number === i), "sequence numbers");
const pieces = events.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta);
check(pieces.length > 3, `text arrived in pieces ${JSON.stringify(pieces)}`);
simulated(pieces.join(""), "streamed text");

// responses.stream(): the strict helper throws on any event outside the canonical sequence.
const stream = client.responses.stream({ model: "auto", input: "hello", reasoning: { effort: "low" } });
const helperTypes = [];
let helperText = "";
stream.on("event", (e) => helperTypes.push(e.type));
stream.on("response.output_text.delta", (e) => {
  helperText += e.delta;
});
const final = await stream.finalResponse();
check(final.status === "completed", `final status ${final.status}`);
check(JSON.stringify(final.output.map((i) => i.type)) === '["reasoning","message"]', `final output ${JSON.stringify(final.output)}`);
check(final.output_text === helperText, `final text = streamed text ${JSON.stringify(final.output_text)}`);
simulated(final.output_text, "final text");
check(helperTypes.at(-1) === "response.completed", `helper events ${helperTypes}`);

// A function-call round trip through the helper.
const tools = [
  {
    type: "function",
    name: "exec_command",
    description: "Runs a shell command.",
    parameters: {
      type: "object",
      properties: { cmd: { type: "string" }, workdir: { type: "string" } },
      required: ["cmd"],
    },
    strict: false,
  },
];
const ask = [{ role: "user", content: "Use the exec_command tool to run `echo hi-from-tool`" }];
const call = await client.responses.stream({ model: "auto", input: ask, tools }).finalResponse();
const calls = call.output.filter((i) => i.type === "function_call");
check(calls.length === 1 && calls[0].name === "exec_command" && calls[0].call_id, `call ${JSON.stringify(call.output)}`);
check(JSON.stringify(JSON.parse(calls[0].arguments)) === '{"cmd":"echo hi-from-tool"}', `arguments ${calls[0].arguments}`);
const answer = await client.responses
  .stream({
    model: "auto",
    tools,
    input: [...ask, ...call.output, { type: "function_call_output", call_id: calls[0].call_id, output: "hi-from-tool\n" }],
  })
  .finalResponse();
check(answer.status === "completed", `answer status ${answer.status}`);
check(answer.output_text.includes("hi-from-tool"), `answer quotes the tool ${JSON.stringify(answer.output_text)}`);

// Errors surface as the library's exception classes.
async function expect(cls, fn, what) {
  try {
    await fn();
  } catch (e) {
    check(e instanceof cls, `${what}: expected ${cls.name}, got ${e?.constructor?.name}: ${e?.message}`);
    return e;
  }
  check(false, `${what}: expected ${cls.name}, got no error`);
}
const e = await expect(
  OpenAI.BadRequestError,
  () => client.responses.create({ model: "auto", input: "again", previous_response_id: response.id }),
  "previous_response_id",
);
check(e.param === "previous_response_id", `param named ${JSON.stringify(e.error)}`);
const badKey = new OpenAI({ baseURL, apiKey: "sk-not-a-key", maxRetries: 0 });
await expect(OpenAI.AuthenticationError, () => badKey.responses.create({ model: "auto", input: "x" }), "bad key");
await expect(OpenAI.NotFoundError, () => client.responses.create({ model: "gpt-9000", input: "x" }), "unknown model");

console.log("all client checks passed");
