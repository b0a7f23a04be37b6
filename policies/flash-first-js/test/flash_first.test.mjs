// Native tests of the JavaScript flash-first (no wasm): the shared cases come from
// tests/conformance/flash-first.json, the rest are JavaScript's own.
//   node --import ../../sdk/js/native-host.mjs --test test/
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as sp from '../../../sdk/js/switchyard-policy.mjs';
import * as t from '../../../sdk/js/testing.mjs';
import * as policy from '../flash_first.js';

const fixture = JSON.parse(readFileSync(new URL('../../../tests/conformance/flash-first.json', import.meta.url)));

// A fixture case's request, from the defaults its `about` names.
function fixtureRequest(r, config = {}) {
  const candidates = t.exampleCatalog()
    .filter((c) => !r.candidates || r.candidates.includes(c.model))
    .map((c) => ({ ...c, health: r.health?.[c.model] ?? 'healthy' }));
  return t.summary({
    requestedModel: r.requested_model ?? 'auto',
    estimatedInputTokens: r.input_tokens ?? 1000,
    maxOutputTokens: r.max_output_tokens,
    toolCallsSoFar: r.tool_calls ?? 0,
    reasoningEffort: r.reasoning_effort,
    hasImages: r.images ?? false,
    lastUserExcerpt: r.excerpt ?? '',
    hints: r.hints ?? [],
    candidates,
    budget: r.budget ? t.budget({ daily: r.budget }) : undefined,
    config: JSON.stringify(config),
  });
}

// A decision in the fixture's terms (as tests/all/conformance.rs describes it).
function describe(d) {
  if (sp.isReject(d)) return { reject: { status: d.val.status, code: d.val.code } };
  const r = d.val;
  const v = { primary: r.primary.model, fallbacks: r.fallbacks.map((f) => f.model) };
  for (const p of r.tags) {
    if (p.key === 'reason') v.reason = p.value;
    if (p.key === 'downgraded') v.downgraded = p.value === 'true';
  }
  if (r.cache !== 'off') v.cache = r.cache;
  if (r.cacheTtlSeconds !== undefined) v.ttl = r.cacheTtlSeconds;
  return v;
}

for (const c of fixture.cases) {
  test(`fixture: ${c.name}`, () => {
    assert.deepEqual(describe(t.decide(policy, fixtureRequest(c.request, c.config))), c.expect);
  });
}

test('fixture: config validation', () => {
  for (const c of fixture.config_validation) {
    const text = JSON.stringify(c.config);
    if (c.ok) policy.validateConfig(text);
    else assert.throws(() => policy.validateConfig(text), (e) => typeof e === 'string' && e.includes(c.error_contains), text);
  }
});

test('a refusal is logged once', () => {
  t.reset();
  const d = t.decide(policy, t.summary({ hasImages: true, candidates: [t.candidate('deepseek-v4-flash')] }));
  assert.ok(sp.isReject(d));
  assert.equal(t.host().logs.length, 1);
  assert.match(t.host().logs[0][1], /\(images\)/);
});

test('a model the tenant cannot use is routed, not pinned', () => {
  const d = t.decide(policy, t.summary({ requestedModel: 'gpt-4o', candidates: t.exampleCatalog() }));
  assert.equal(d.val.primary.model, 'deepseek-v4-flash');
});

test('config values of the wrong type are refused', () => {
  for (const [bad, needle] of [['{"agent_depth_threshold":"ten"}', 'must be a number'], ['[1]', 'an object'],
    ['{"cache":"Off"}', 'unknown cache mode `Off`'], ['{', 'invalid policy config']]) {
    assert.throws(() => policy.validateConfig(bad), (e) => e.includes(needle), bad);
  }
});

test('decisions leave the 0.2 knobs to the host, and outcomes are ignored', () => {
  t.reset();
  const r = t.decide(policy, t.summary({ candidates: t.exampleCatalog() })).val;
  assert.equal(r.keepConversation || r.reportOutcome, false);
  assert.equal(r.primary.firstTokenDeadlineMs, undefined);
  policy.onOutcome('{}', t.outcome());
  assert.equal(t.host().state.size, 0);
});

test('sdk: constructors take options and fill every field', () => {
  const d = sp.route(sp.target('a', { upstream: 'u1', firstTokenDeadlineMs: 1500 }), {
    fallbacks: ['b', sp.target('c', { retries: 2 })], cache: 'read-only', tags: { reason: 'x' },
    keepConversation: true, reportOutcome: true,
  });
  const r = d.val;
  assert.deepEqual(r.primary, { model: 'a', upstream: 'u1', firstTokenDeadlineMs: 1500, attemptTimeoutMs: undefined, retries: undefined });
  assert.deepEqual(r.fallbacks.map((f) => [f.model, f.retries]), [['b', undefined], ['c', 2]]);
  assert.deepEqual([r.cache, r.tags, r.keepConversation, r.reportOutcome], ['read-only', [{ key: 'reason', value: 'x' }], true, true]);
  assert.throws(() => sp.route('a', { cache: 'sometimes' }), /unknown cache mode/);
});

test('sdk: helpers', () => {
  const r = t.summary({
    hints: { Tier: 'Pro' }, lastUserExcerpt: 'Refactor ACROSS the repo',
    budget: t.budget({ daily: [5, 10], monthly: [80, 100] }), rateLimits: { requestsPerMinute: 100, requestsRemaining: 50 },
    candidates: [t.candidate('m', { labels: { tier: 'strong' }, upstreams: [t.signals('test-upstream', { ttftP95Ms: 600 })] })],
  });
  assert.ok(sp.hintMatchesAny(r, ['x=y', 'tier=pro']));
  assert.ok(!sp.hintMatchesAny(r, ['tier', 'tier=flash']));
  assert.ok(sp.mentionsAny(r, ['refactor across']));
  assert.equal(sp.budgetUsedFraction(r), 0.8);
  assert.equal(sp.rateLimitHeadroom(r), 0.5);
  const m = sp.candidate(r, 'm');
  assert.deepEqual([sp.label(m, 'TIER'), sp.upstreamSignals(m).ttftP95Ms], ['strong', 600]);
});

test('sdk: state is read-only while deciding and learns in onOutcome', () => {
  t.reset();
  const seen = [];
  const learner = sp.policy({
    defaults: {},
    decide(c, r) {
      try {
        sp.state.set('k', 'v');
      } catch (e) {
        seen.push(e.message);
      }
      return sp.route('m', { tags: { n: String(sp.state.getJson('n', 0)) }, reportOutcome: true });
    },
    onOutcome: () => sp.state.setJson('n', sp.state.getJson('n', 0) + 1),
  });
  const d = t.decide(learner, t.summary());
  assert.match(seen[0], /read-only while deciding/);
  t.onOutcome(learner, '{}', t.outcomeOf(d));
  t.onOutcome(learner, '{}', t.outcomeOf(d));
  assert.deepEqual(t.decide(learner, t.summary()).val.tags, [{ key: 'n', value: '2' }]);
  assert.deepEqual([...t.host().state.keys()], ['n']);
});
