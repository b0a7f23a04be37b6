// Native tests for JavaScript policies (Node, no wasm; run under `node --import
// sdk/js/native-host.mjs`): builders for the contract's records taking an options object, with
// every field defaulted, and decide()/onOutcome() that call a policy as the host does.
//
//   import * as t from '../../../sdk/js/testing.mjs';
//   const d = t.decide(policy, t.summary({ toolCallsSoFar: 12, candidates: t.exampleCatalog() }));
//   t.onOutcome(policy, '{}', t.outcomeOf(d, { ttftMs: 900 }));
//   t.host().state, t.host().logs

/** The stand-in host of native-host.mjs: { logs, state, deciding }. */
export const host = () => globalThis.switchyardHost;

/** Empties the stand-in's logs and state. */
export function reset() {
  host().logs.length = 0;
  host().state.clear();
  host().deciding = false;
}

// The arrival time of a test request unless set: 2026-12-01T12:00:00Z.
export const RECEIVED_AT_UNIX_MS = 1796126400000n;

const pairs = (tags) =>
  Array.isArray(tags) ? tags.map((p) => (Array.isArray(p) ? { key: p[0], value: p[1] } : p))
    : Object.entries(tags).map(([key, value]) => ({ key, value }));

/** UpstreamSignals for `upstream`: healthy, idle, no samples, unless `fields` say otherwise. */
export function signals(upstream, fields = {}) {
  return {
    upstream, health: 'healthy', ttftP50Ms: undefined, ttftP95Ms: undefined, errorRate: undefined,
    samples: 0, inFlight: 0, remainingRequests: undefined, remainingTokens: undefined, ...fields,
  };
}

/**
 * A candidate: healthy on `test-upstream`, USD 1 / 0.1 / 2 per million tokens, 1M context, 384K
 * output, text only, no labels (`labels` may be an object). Without `upstreams`, it lists its one
 * upstream with the candidate's health.
 */
export function candidate(model, fields = {}) {
  const c = {
    model, upstream: 'test-upstream', inputUsdPerMtok: 1, cachedInputUsdPerMtok: 0.1, outputUsdPerMtok: 2,
    priceWindow: undefined, contextWindow: 1000000, maxOutputTokens: 384000, supportsImages: false,
    health: 'healthy', labels: [], upstreams: undefined, ...fields,
  };
  c.labels = pairs(c.labels).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  c.upstreams ??= [signals(c.upstream, { health: c.health })];
  return c;
}

/**
 * An example catalog (not something the SDK knows): DeepSeek V4 Flash and Pro (text, 1M context)
 * and gpt-5.5 (images, 400K), the models of flash-first and its conformance fixture.
 */
export function exampleCatalog() {
  return [
    candidate('deepseek-v4-flash', { inputUsdPerMtok: 0.14, cachedInputUsdPerMtok: 0.0028, outputUsdPerMtok: 0.28, labels: { tier: 'fast' } }),
    candidate('deepseek-v4-pro', { inputUsdPerMtok: 0.435, cachedInputUsdPerMtok: 0.003625, outputUsdPerMtok: 0.87, labels: { tier: 'strong' } }),
    candidate('gpt-5.5', { inputUsdPerMtok: 5, cachedInputUsdPerMtok: 0.5, outputUsdPerMtok: 30, contextWindow: 400000, supportsImages: true, labels: { tier: 'frontier' } }),
  ];
}

/** A budget from [spent, limit] pairs (undefined: no such budget). */
export function budget({ daily, monthly } = {}) {
  return {
    spentTodayUsd: daily?.[0] ?? 0, dailyLimitUsd: daily?.[1],
    spentMonthUsd: monthly?.[0] ?? 0, monthlyLimitUsd: monthly?.[1],
  };
}

/**
 * A request summary asking for `auto`: no candidates, 1,000 input tokens, one message, a new
 * conversation (key 0 from the prefix), no budgets or limits, config `{}`, seed 0; any field by
 * name (`hints` may be an object or pairs; `budget`, `rateLimits` and `conversation` are merged
 * over their defaults).
 */
export function summary(fields = {}) {
  const { budget: b, rateLimits, conversation, hints = [], ...rest } = fields;
  return {
    requestId: 'req_test', tenant: 'test-tenant', endpoint: 'chat-completions', requestedModel: 'auto',
    streaming: false, estimatedInputTokens: 1000, maxOutputTokens: undefined, messageCount: 1,
    toolsOffered: 0, toolCallsSoFar: 0, messagesSinceUser: 0, reasoningEffort: undefined, hasImages: false, lastUserExcerpt: '',
    candidates: [], config: '{}', receivedAtUnixMs: RECEIVED_AT_UNIX_MS, seed: 0n, ...rest,
    hints: pairs(hints),
    budget: { ...budget(), ...b },
    rateLimits: { requestsPerMinute: undefined, requestsRemaining: undefined, tokensPerMinute: undefined, tokensRemaining: undefined, ...rateLimits },
    conversation: {
      key: 0n, source: 'prefix', turns: 0, lastModel: undefined, lastUpstream: undefined,
      lastCacheHitRatio: undefined, sinceLastMs: undefined, ...conversation,
    },
  };
}

/**
 * An outcome: request `req_test` served by `model` on `test-upstream` with a 200, 300 ms to the
 * first byte, 1,000 in all, 1,000 input tokens (none cached), 100 output, USD 0.001.
 */
export function outcome(model = 'm', fields = {}) {
  const o = {
    requestId: 'req_test', endpoint: 'chat-completions', conversationKey: 0n, model, upstream: 'test-upstream',
    status: 200, ttftMs: 300, totalMs: 1000, inputTokens: 1000, cachedInputTokens: 0, outputTokens: 100,
    costUsd: 0.001, fallbacks: 0, attempts: [], tags: [], receivedAtUnixMs: RECEIVED_AT_UNIX_MS, ...fields,
  };
  o.tags = pairs(o.tags);
  return o;
}

/** The outcome of `decision` served by its primary, with its tags (a rejection: nothing served). */
export function outcomeOf(decision, fields = {}) {
  if (decision.tag === 'route') {
    const r = decision.val;
    return outcome(r.primary.model, { upstream: r.primary.upstream ?? 'test-upstream', tags: r.tags, ...fields });
  }
  return outcome(undefined, { upstream: undefined, status: decision.val.status, ttftMs: undefined, ...fields });
}

/** `exports.decide(request)` with state read-only, as the host calls it. */
export function decide(exports, request) {
  host().deciding = true;
  try {
    return exports.decide(request);
  } finally {
    host().deciding = false;
  }
}

/** `exports.onOutcome(config, outcome)` with state writable. */
export function onOutcome(exports, config, o) {
  exports.onOutcome(config, o);
}
