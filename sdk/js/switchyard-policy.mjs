// Write Switchyard routing policies in JavaScript, against contract switchyard:policy@0.2.0
// (wit/policy.wit), built with componentize-js.
//
// A thin layer over the bindings componentize-js generates (records are objects with camelCase
// fields, enums kebab-case strings, u64 fields BigInt, options `undefined`): constructors that take
// an options object and fill every field the contract has (so a policy keeps working when it gains
// one), config parsing with defaults, and the helpers of the Rust SDK (sdk/src): hintMatchesAny,
// mentionsAny, budgetUsedFraction, firstUsable. A policy imports it by relative path and
// componentize-js bundles it (policies/flash-first-js/build.mjs):
//
//   import * as sp from '../../sdk/js/switchyard-policy.mjs';
//   export const { validateConfig, decide, onOutcome } = sp.policy({
//     defaults: { cheap: 'deepseek-v4-flash', strong: 'deepseek-v4-pro', cache: 'off' },
//     enums: { cache: sp.CacheMode },
//     decide: (c, request) => sp.firstUsable(request, request.toolCallsSoFar > 10 ? [c.strong, c.cheap] : [c.cheap, c.strong], { cache: c.cache }),
//   });
//
// Native tests: sdk/js/native-host.mjs stands in for the host's imports, sdk/js/testing.mjs builds
// summaries and outcomes.
import { log } from 'switchyard:policy/log@0.2.0';
import * as hostState from 'switchyard:policy/state@0.2.0';

// --- contract enums ----------------------------------------------------------------------------

/** A contract enum: its WIT names, and `parse`, which throws ConfigError for any other. */
function contractEnum(what, names) {
  return Object.freeze({
    what,
    names,
    parse(name) {
      if (names.includes(name)) return name;
      const expected = `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
      throw new ConfigError(`unknown ${what} \`${name}\` (expected ${expected})`);
    },
  });
}

export const CacheMode = contractEnum('cache mode', ['off', 'read-only', 'write-only', 'read-write']);
export const Health = contractEnum('health', ['healthy', 'degraded', 'unavailable']);
export const Endpoint = contractEnum('endpoint', ['chat-completions', 'messages', 'responses']);
export const LogLevel = contractEnum('log level', ['trace', 'debug', 'info', 'warn', 'error']);

// --- config ------------------------------------------------------------------------------------

/** A config the policy refuses; its message is the reason the host reports. */
export class ConfigError extends Error {}

function kind(v) {
  if (Array.isArray(v)) return 'a list';
  if (v === null) return null;
  return { boolean: 'a boolean', number: 'a number', string: 'a string', object: 'an object' }[typeof v] ?? null;
}

/**
 * Parses a tenant's config (JSON; empty means `{}`) over `defaults`. Throws ConfigError for a
 * config that is not an object, a key `defaults` lacks, a value of another JSON type than its
 * default (a default of null takes anything), and a value of `enums[key]` (e.g. CacheMode) that
 * is not one of its WIT names.
 */
export function parseConfig(text, defaults, enums = {}) {
  let raw;
  try {
    raw = text && text.trim() ? JSON.parse(text) : {};
  } catch (e) {
    throw new ConfigError(`invalid policy config: ${e.message}`);
  }
  if (kind(raw) !== 'an object') throw new ConfigError('invalid policy config: expected an object');
  const unknown = Object.keys(raw).filter((k) => !Object.hasOwn(defaults, k)).sort();
  if (unknown.length) throw new ConfigError(`invalid policy config: unknown field \`${unknown[0]}\``);
  const config = { ...defaults };
  for (const [key, value] of Object.entries(raw)) {
    const want = kind(defaults[key]);
    if (want && value !== null && kind(value) !== want) {
      throw new ConfigError(`invalid policy config: \`${key}\` must be ${want}`);
    }
    if (enums[key]) {
      try {
        enums[key].parse(value);
      } catch (e) {
        throw new ConfigError(`invalid policy config: ${key}: ${e.message}`);
      }
    }
    config[key] = value;
  }
  return config;
}

function splitHint(spec) {
  const i = spec.indexOf('=');
  return i > 0 && i < spec.length - 1 ? [spec.slice(0, i), spec.slice(i + 1)] : null;
}

/** Throws ConfigError for the first hint spec that is not `key=value`. */
export function checkHints(specs) {
  const bad = specs.find((s) => !splitHint(s));
  if (bad !== undefined) throw new ConfigError(`hint \`${bad}\` must look like key=value`);
}

// --- reading the request -----------------------------------------------------------------------

/** The first routing hint named `key` (case-insensitive), or undefined. */
export function hint(request, key) {
  const k = key.toLowerCase();
  return request.hints.find((p) => p.key.toLowerCase() === k)?.value;
}

/** Whether a hint matches any `key=value` of `specs`, ignoring case (other specs never match). */
export function hintMatchesAny(request, specs) {
  return specs.some((spec) => {
    const parsed = splitHint(spec);
    const value = parsed && hint(request, parsed[0]);
    return value !== undefined && value !== null && value.toLowerCase() === parsed[1].toLowerCase();
  });
}

/** Whether the last user message (or `request`, if a string) contains any of `phrases`, ignoring case. */
export function mentionsAny(request, phrases) {
  const text = (typeof request === 'string' ? request : request.lastUserExcerpt).toLowerCase();
  return phrases.some((p) => text.includes(p.toLowerCase()));
}

const share = (spent, limit) => (limit ? spent / limit : undefined);
const tightest = (values, pick) => {
  const present = values.filter((v) => v !== undefined);
  return present.length ? pick(...present) : undefined;
};

/** Share of the tightest budget already spent, from 0 up; undefined without budgets. */
export function budgetUsedFraction(request) {
  const b = request.budget;
  return tightest([share(b.spentTodayUsd, b.dailyLimitUsd), share(b.spentMonthUsd, b.monthlyLimitUsd)], Math.max);
}

/** Share of the tightest rate limit left this minute (1 untouched); undefined without limits. */
export function rateLimitHeadroom(request) {
  const r = request.rateLimits;
  const left = (remaining, limit) => (remaining === undefined ? undefined : share(remaining, limit));
  return tightest([left(r.requestsRemaining, r.requestsPerMinute), left(r.tokensRemaining, r.tokensPerMinute)], Math.min);
}

/** The context a model needs for the request: the prompt plus the completion cap. */
export function tokensNeeded(request) {
  return request.estimatedInputTokens + (request.maxOutputTokens ?? 0);
}

/** The candidate named `model`, if the tenant may use it. */
export function candidate(request, model) {
  return request.candidates.find((c) => c.model === model);
}

/** The candidate's catalog label `key` (case-insensitive), or undefined. */
export function label(cand, key) {
  const k = key.toLowerCase();
  return cand.labels.find((p) => p.key.toLowerCase() === k)?.value;
}

/** What the host has seen of the candidate on `upstream` (default: the one it would use now). */
export function upstreamSignals(cand, upstream = cand.upstream) {
  return cand.upstreams.find((s) => s.upstream === upstream);
}

/**
 * The usable part of `chain` (model names), as candidates: models the tenant may use, each once,
 * whose context window holds the request, unavailable ones moved last.
 */
export function usable(request, chain) {
  const needed = tokensNeeded(request);
  const found = [];
  for (const model of chain) {
    const c = candidate(request, model);
    if (c && c.contextWindow >= needed && !found.some((f) => f.model === model)) found.push(c);
  }
  // Array.prototype.sort is stable.
  return found.sort((a, b) => (a.health === 'unavailable') - (b.health === 'unavailable'));
}

// --- decisions ---------------------------------------------------------------------------------

/** One place to send the request, with its own limits. */
export function target(model, { upstream, firstTokenDeadlineMs, attemptTimeoutMs, retries } = {}) {
  return { model, upstream, firstTokenDeadlineMs, attemptTimeoutMs, retries };
}

const asTarget = (t) => (typeof t === 'string' ? target(t) : target(t.model, t));
const asPairs = (tags) =>
  Array.isArray(tags) ? tags.map((p) => (Array.isArray(p) ? { key: p[0], value: p[1] } : p))
    : Object.entries(tags).map(([key, value]) => ({ key, value }));

/**
 * Send the request to `primary` (a model name or a target()), then `fallbacks` in order. `tags`
 * is an object or [key, value] pairs; `cache` a CacheMode name.
 */
export function route(primary, {
  fallbacks = [], cache = 'off', cacheTtlSeconds, reasoningEffort, maxOutputTokens, tags = {},
  keepConversation = false, reportOutcome = false,
} = {}) {
  return {
    tag: 'route',
    val: {
      primary: asTarget(primary),
      fallbacks: fallbacks.map(asTarget),
      reasoningEffort,
      maxOutputTokens,
      cache: CacheMode.parse(cache),
      cacheTtlSeconds: cacheTtlSeconds ?? undefined,
      tags: asPairs(tags),
      keepConversation,
      reportOutcome,
    },
  };
}

/** Refuse the request: `status` 400-499 or 503, `code` machine-readable. */
export function reject(status, code, message) {
  return { tag: 'reject', val: { status, code, message } };
}

/** Whether `decision` refuses the request. */
export const isReject = (decision) => decision.tag === 'reject';

/**
 * Route along usable(request, chain) (options as for route()); when nothing in it is usable, a
 * 400 rejection with code `no_suitable_model`.
 */
export function firstUsable(request, chain, options = {}) {
  const [first, ...rest] = usable(request, chain);
  if (!first) {
    return reject(400, 'no_suitable_model',
      `none of this tenant's models can serve this request (${tokensNeeded(request)} tokens needed)`);
  }
  return route(first.model, { ...options, fallbacks: rest.map((c) => c.model) });
}

// --- log and state -----------------------------------------------------------------------------

export const debug = (message) => log('debug', message);
export const info = (message) => log('info', message);
export const warn = (message) => log('warn', message);
export const error = (message) => log('error', message);

/**
 * The policy's own statistics, kept by the host per tenant (wit `state`): readable everywhere,
 * writable only in onOutcome (`set` throws, with the host's reason, while deciding or past the
 * tenant's limits).
 */
export const state = Object.freeze({
  /** The bytes (Uint8Array) under `key`, or undefined. */
  get: (key) => hostState.get(key),
  /** Stores bytes, or a string as UTF-8, under `key`. */
  set(key, value) {
    hostState.set(key, typeof value === 'string' ? new TextEncoder().encode(value) : value);
  },
  remove: (key) => hostState.remove(key),
  /** The JSON value under `key`; `fallback` when there is none or it does not parse. */
  getJson(key, fallback = undefined) {
    const raw = hostState.get(key);
    if (raw === undefined) return fallback;
    try {
      return JSON.parse(new TextDecoder().decode(raw));
    } catch {
      return fallback;
    }
  },
  setJson(key, value) {
    state.set(key, JSON.stringify(value));
  },
});

// --- the component's exports -------------------------------------------------------------------

const message = (e) => (e instanceof Error ? e.message : String(e));

/**
 * The component's exports: `export const { validateConfig, decide, onOutcome } = policy({...})`.
 * Every call parses the tenant's config over `defaults` (parseConfig, with `enums`) first.
 * `validate(config)` returns an error message or nothing (or throws ConfigError);
 * `decide(config, request)` returns a decision; `onOutcome(config, outcome)` learns (default:
 * nothing). A config that no longer parses when deciding is a 503 `policy_config_invalid`, as in
 * the Rust SDK.
 */
// The contract counts tokens and context windows in u64 (0.1.0's types), which jco hands over as
// BigInts: policies see them as Numbers (exact up to 2^53 tokens), and a completion cap goes back
// as a BigInt.
const num = (v) => (typeof v === 'bigint' ? Number(v) : v);
function fromHost(request) {
  return {
    ...request,
    estimatedInputTokens: num(request.estimatedInputTokens),
    maxOutputTokens: num(request.maxOutputTokens),
    candidates: request.candidates.map((c) => ({
      ...c,
      contextWindow: num(c.contextWindow),
      maxOutputTokens: num(c.maxOutputTokens),
    })),
  };
}
function toHost(decision) {
  const cap = decision?.val?.maxOutputTokens;
  if (decision?.tag === 'route' && cap !== undefined && cap !== null) {
    return { ...decision, val: { ...decision.val, maxOutputTokens: BigInt(cap) } };
  }
  return decision;
}

export function policy({ defaults, enums = {}, validate, decide, onOutcome }) {
  const parse = (text) => parseConfig(text, defaults, enums);
  return {
    validateConfig(text) {
      let problem;
      try {
        problem = validate?.(parse(text));
      } catch (e) {
        problem = message(e);
      }
      if (problem) throw String(problem); // a thrown string is the result's `err`
    },
    decide(request) {
      let config;
      try {
        config = parse(request.config);
      } catch (e) {
        return reject(503, 'policy_config_invalid', message(e));
      }
      return toHost(decide(config, fromHost(request)));
    },
    onOutcome(text, outcome) {
      if (!onOutcome) return;
      let config;
      try {
        config = parse(text);
      } catch (e) {
        warn(`outcome of ${outcome.requestId} dropped: ${message(e)}`);
        return;
      }
      onOutcome(config, outcome);
    },
  };
}
