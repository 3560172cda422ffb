// The client matrix: popular client libraries, unchanged, through Tollgate to an
// OpenAI-compatible ("chat"), an Anthropic ("claude") and a Gemini ("gemini") backend (the
// mock in the tree speaks each wire format). Run by tests/e2e/clients.rs with
// TOLLGATE_ROOT_URL and TOLLGATE_KEY; prints one line per case and a count, exits 1 on a
// failure. Versions are pinned in package.json.
import assert from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { generateText, streamText, Output, stepCountIs, tool } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { createAnthropic } from "@ai-sdk/anthropic";
import { ChatOpenAI } from "@langchain/openai";
import { ChatAnthropic } from "@langchain/anthropic";
import { z } from "zod";

const ROOT = process.env.TOLLGATE_ROOT_URL;
const KEY = process.env.TOLLGATE_KEY;
const BACKENDS = ["chat", "claude", "gemini"];
const only = process.env.MATRIX_ONLY;

const openai = new OpenAI({ baseURL: `${ROOT}/v1`, apiKey: KEY, maxRetries: 0, timeout: 20000 });
const anthropic = new Anthropic({ baseURL: ROOT, apiKey: KEY, maxRetries: 0, timeout: 20000 });
const vercelOpenAI = createOpenAI({ baseURL: `${ROOT}/v1`, apiKey: KEY });
const vercelCompatible = createOpenAICompatible({ name: "tollgate", baseURL: `${ROOT}/v1`, apiKey: KEY });
const vercelAnthropic = createAnthropic({ baseURL: `${ROOT}/v1`, apiKey: KEY });
const langchainOpenAI = (model) =>
  new ChatOpenAI({ model, apiKey: KEY, configuration: { baseURL: `${ROOT}/v1` }, maxRetries: 0 });
const langchainAnthropic = (model) =>
  new ChatAnthropic({ model, apiKey: KEY, anthropicApiUrl: ROOT, maxRetries: 0 });

const WEATHER_OPENAI = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const WEATHER_ANTHROPIC = {
  name: "get_weather",
  description: "Weather in a city",
  input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};
const ANSWER = z.object({ answer: z.string() });
// A reasoning model that calls a tool: what the mock says when a test asks for it.
const REASONING_TOOL = JSON.stringify({
  reasoning: ["Let me ", "check the weather."],
  tool: { name: "get_weather", arguments: ['{"city":', '"Oslo"}'] },
});

const cases = [];
const add = (name, fn) => cases.push({ name, fn });

for (const model of BACKENDS) {
  // --- the official OpenAI SDK ---
  add(`openai chat text ${model}`, async () => {
    const r = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "Hello" }] });
    assert.ok(r.choices[0].message.content.length > 0);
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
  });
  add(`openai chat stream with usage ${model}`, async () => {
    const s = await openai.chat.completions.create({
      model, stream: true, stream_options: { include_usage: true },
      messages: [{ role: "user", content: "Hello" }],
    });
    let text = "";
    let usage;
    for await (const c of s) {
      text += c.choices[0]?.delta?.content ?? "";
      usage = c.usage ?? usage;
    }
    assert.ok(text.length > 0);
    assert.ok(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
  });
  add(`openai tool round trip ${model}`, async () => {
    const messages = [{ role: "user", content: "Weather in Oslo?" }];
    const first = await openai.chat.completions.create({ model, messages, tools: [WEATHER_OPENAI] });
    const call = first.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, "get_weather");
    messages.push(first.choices[0].message, { role: "tool", tool_call_id: call.id, content: "sunny" });
    const second = await openai.chat.completions.create({ model, messages, tools: [WEATHER_OPENAI] });
    assert.ok(second.choices[0].message.content.length > 0);
  });
  add(`openai JSON mode ${model}`, async () => {
    const r = await openai.chat.completions.create({
      model, response_format: { type: "json_object" },
      messages: [{ role: "user", content: "Answer in JSON." }],
    });
    assert.equal(typeof JSON.parse(r.choices[0].message.content), "object");
  });
  add(`openai responses multi-turn ${model}`, async () => {
    const first = await openai.responses.create({ model, input: "My name is Ada." });
    const second = await openai.responses.create({ model, previous_response_id: first.id, input: "Who am I?" });
    assert.ok(second.output_text.length > 0);
    assert.equal((await openai.responses.retrieve(first.id)).id, first.id);
  });
  add(`openai responses stream with reasoning ${model}`, async () => {
    const stream = openai.responses.stream(
      { model, input: "Think, then call the tool.", tools: [{ type: "function", ...WEATHER_OPENAI.function }] },
      { headers: { "x-mock-reply": REASONING_TOOL } },
    );
    for await (const _ of stream) {
      // drained
    }
    const final = await stream.finalResponse();
    assert.ok(final.output.some((i) => i.type === "function_call"));
  });

  // --- the official Anthropic SDK ---
  add(`anthropic stream reports input usage at the start ${model}`, async () => {
    const stream = anthropic.messages.stream({ model, max_tokens: 64, messages: [{ role: "user", content: "Hello" }] });
    let startInput;
    stream.on("streamEvent", (e) => {
      if (e.type === "message_start") startInput = e.message.usage.input_tokens;
    });
    const final = await stream.finalMessage();
    assert.ok(startInput > 0, `message_start input_tokens ${startInput}`);
    assert.ok(final.content[0].text.length > 0);
  });
  add(`anthropic reasoning tool loop ${model}`, async () => {
    const messages = [{ role: "user", content: "Weather in Oslo?" }];
    const first = await anthropic.messages.create(
      { model, max_tokens: 256, messages, tools: [WEATHER_ANTHROPIC] },
      { headers: { "x-mock-reply": REASONING_TOOL } },
    );
    const use = first.content.find((b) => b.type === "tool_use");
    assert.ok(use, JSON.stringify(first.content));
    // Turn two returns every block, thinking included, as Anthropic requires.
    messages.push({ role: "assistant", content: first.content });
    messages.push({ role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: "sunny" }] });
    const second = await anthropic.messages.create({ model, max_tokens: 256, messages, tools: [WEATHER_ANTHROPIC] });
    assert.ok(second.content.some((b) => b.type === "text"));
  });

  // --- the Vercel AI SDK ---
  add(`vercel openai (responses) multi-turn ${model}`, async () => {
    const first = await generateText({ model: vercelOpenAI(model), prompt: "My name is Ada." });
    const second = await generateText({
      model: vercelOpenAI(model),
      messages: [{ role: "user", content: "My name is Ada." }, ...first.response.messages, { role: "user", content: "Who am I?" }],
    });
    assert.ok(second.text.length > 0);
    assert.ok(second.usage.inputTokens > 0);
  });
  add(`vercel openai-compatible structured output ${model}`, async () => {
    const r = await generateText({ model: vercelCompatible(model), output: Output.object({ schema: ANSWER }), prompt: "Answer." });
    assert.equal(typeof r.output.answer, "string");
  });
  add(`vercel anthropic structured output ${model}`, async () => {
    const r = await generateText({ model: vercelAnthropic(model), output: Output.object({ schema: ANSWER }), prompt: "Answer." });
    assert.equal(typeof r.output.answer, "string");
  });
  add(`vercel stream with tools ${model}`, async () => {
    const r = streamText({
      model: vercelCompatible(model),
      prompt: "Weather in Oslo?",
      tools: { get_weather: tool({ description: "Weather", inputSchema: z.object({ city: z.string() }), execute: async () => "sunny" }) },
      stopWhen: stepCountIs(3),
    });
    let text = "";
    for await (const t of r.textStream) text += t;
    assert.ok(text.length > 0);
    assert.ok((await r.steps).length >= 2);
  });

  // --- LangChain ---
  add(`langchain openai stream ${model}`, async () => {
    let text = "";
    for await (const c of await langchainOpenAI(model).stream("Hello")) text += c.content;
    assert.ok(text.length > 0);
  });
  add(`langchain openai function-calling structured output ${model}`, async () => {
    const structured = langchainOpenAI(model).withStructuredOutput(ANSWER, { method: "functionCalling" });
    const r = await structured.invoke("Answer.");
    assert.equal(typeof r.answer, "string");
  });
  add(`langchain anthropic stream usage ${model}`, async () => {
    let last;
    for await (const c of await langchainAnthropic(model).stream("Hello")) {
      last = last ? last.concat(c) : c;
    }
    assert.ok(last.usage_metadata.input_tokens > 0, JSON.stringify(last.usage_metadata));
    assert.ok(last.content.length > 0);
  });
}

let passed = 0;
const failed = [];
for (const c of cases) {
  if (only && !c.name.includes(only)) continue;
  try {
    await c.fn();
    passed += 1;
    console.log(`PASS ${c.name}`);
  } catch (e) {
    failed.push(c.name);
    console.log(`FAIL ${c.name}: ${(e && (e.stack || e.message)) || e}`.slice(0, 1500));
  }
}
console.log(`${passed} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
