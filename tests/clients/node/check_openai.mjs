// Drives Switchyard with the official OpenAI Node library, unmodified.
// Run by tests/all/clients.rs with SWITCHYARD_URL, SWITCHYARD_KEY and SWITCHYARD_BROKEN_KEY set.
import OpenAI from "openai";

const baseURL = process.env.SWITCHYARD_URL;
const client = new OpenAI({ baseURL, apiKey: process.env.SWITCHYARD_KEY, maxRetries: 0 });

function check(condition, what) {
  if (!condition) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
}

const { data: completion, response } = await client.chat.completions
  .create({ model: "auto", messages: [{ role: "user", content: "hello" }] })
  .withResponse();
check(response.headers.get("x-switchyard-model") === "deepseek-v4-flash", "routing header");
check(completion.choices[0].message.content === "Hello from the mock", "completion content");
check(completion.usage.prompt_tokens === 100, "usage");

const pieces = [];
const stream = await client.chat.completions.create({
  model: "auto",
  messages: [{ role: "user", content: "hello" }],
  stream: true,
});
for await (const chunk of stream) {
  const text = chunk.choices?.[0]?.delta?.content;
  if (text) pieces.push(text);
}
check(pieces.join("") === "Hello from the stream", `stream text ${JSON.stringify(pieces)}`);
check(pieces.length === 4, "stream arrived in chunks");

const ids = [];
for await (const m of client.models.list()) ids.push(m.id);
check(JSON.stringify(ids) === JSON.stringify(["deepseek-v4-flash", "auto"]), `models ${JSON.stringify(ids)}`);

async function expect(cls, fn, what) {
  try {
    await fn();
  } catch (e) {
    check(e instanceof cls, `${what}: expected ${cls.name}, got ${e?.constructor?.name}: ${e?.message}`);
    return e;
  }
  check(false, `${what}: expected ${cls.name}, got no error`);
}

const msg = [{ role: "user", content: "x" }];
const badKey = new OpenAI({ baseURL, apiKey: "sk-not-a-key", maxRetries: 0 });
await expect(OpenAI.AuthenticationError, () => badKey.chat.completions.create({ model: "auto", messages: msg }), "bad key");
await expect(OpenAI.BadRequestError, () => client.chat.completions.create({ model: "auto", messages: [] }), "empty messages");
await expect(OpenAI.PermissionDeniedError, () => client.chat.completions.create({ model: "deepseek-v4-pro", messages: msg }), "model not allowed");
await expect(OpenAI.NotFoundError, () => client.chat.completions.create({ model: "gpt-9000", messages: msg }), "unknown model");
const broken = new OpenAI({ baseURL, apiKey: process.env.SWITCHYARD_BROKEN_KEY, maxRetries: 0 });
await expect(OpenAI.InternalServerError, () => broken.chat.completions.create({ model: "auto", messages: msg }), "policy failure");

console.log("all client checks passed");
