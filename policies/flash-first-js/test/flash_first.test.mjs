// Native unit tests of the JavaScript flash-first (no wasm):
//   node --import ./test/wit-stub.mjs --test test/
import test from 'node:test';
import assert from 'node:assert/strict';
import { decide, validateConfig } from '../flash_first.js';

const candidate = (model, contextWindow = 1000000n, supportsImages = false, health = 'healthy') => ({
  model, upstream: 'u', inputUsdPerMtok: 0.14, cachedInputUsdPerMtok: 0.0028, outputUsdPerMtok: 0.28,
  contextWindow, maxOutputTokens: 384000n, supportsImages, health,
});

const request = (over = {}) => ({
  requestId: 'r', tenant: 't', endpoint: 'chat-completions', requestedModel: 'auto', streaming: false,
  estimatedInputTokens: 1000n, maxOutputTokens: undefined, messageCount: 1, toolsOffered: 0, toolCallsSoFar: 0,
  reasoningEffort: undefined, hasImages: false, lastUserExcerpt: '', hints: [],
  candidates: [candidate('deepseek-v4-flash'), candidate('deepseek-v4-pro'), candidate('gpt-5.5', 400000n, true)],
  config: '{}', budget: { spentTodayUsd: 0, dailyLimitUsd: undefined, spentMonthUsd: 0, monthlyLimitUsd: undefined }, seed: 0n,
  ...over,
});

const route = (d) => {
  assert.equal(d.tag, 'route', JSON.stringify(d));
  return [d.val.primary.model, d.val.fallbacks.map((t) => t.model), Object.fromEntries(d.val.tags.map((p) => [p.key, p.value]))];
};

test('bounded work goes to Flash with the full chain', () => {
  assert.deepEqual(route(decide(request())), ['deepseek-v4-flash', ['deepseek-v4-pro', 'gpt-5.5'], { reason: 'default' }]);
});

test('deep agents, hints and refactors go to Pro', () => {
  assert.equal(route(decide(request({ toolCallsSoFar: 11 })))[0], 'deepseek-v4-pro');
  assert.equal(route(decide(request({ toolCallsSoFar: 10 })))[0], 'deepseek-v4-flash');
  assert.equal(route(decide(request({ hints: [{ key: 'difficulty', value: 'HARD' }] })))[2].reason, 'pro-hint');
  assert.equal(route(decide(request({ lastUserExcerpt: 'a multi-file refactor please' })))[2].reason, 'hard-task');
});

test('images go to the vision model, or are refused with a log line', () => {
  assert.equal(route(decide(request({ hasImages: true })))[0], 'gpt-5.5');
  globalThis.policyLogs = [];
  const d = decide(request({ hasImages: true, candidates: [candidate('deepseek-v4-flash')] }));
  assert.equal(d.tag, 'reject');
  assert.equal(d.val.status, 400);
  assert.equal(globalThis.policyLogs.length, 1);
});

test('an unavailable primary goes last', () => {
  const cands = [candidate('deepseek-v4-flash', 1000000n, false, 'unavailable'), candidate('deepseek-v4-pro'), candidate('gpt-5.5', 400000n, true)];
  assert.deepEqual(route(decide(request({ candidates: cands }))).slice(0, 2), ['deepseek-v4-pro', ['gpt-5.5', 'deepseek-v4-flash']]);
});

test('config is validated and used', () => {
  validateConfig('{}');
  assert.throws(() => validateConfig('{"cache":"sometimes"}'), /cache/);
  assert.throws(() => validateConfig('{"typo":1}'), /typo/);
  assert.equal(route(decide(request({ config: '{"agent_depth_threshold":1}', toolCallsSoFar: 2 })))[0], 'deepseek-v4-pro');
});
