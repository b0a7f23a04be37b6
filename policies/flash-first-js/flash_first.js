// flash-first in JavaScript: the same routing rule as policies/flash-first (Rust), same config,
// same decisions (checked against tests/conformance/flash-first.json in CI).
//
// DeepSeek V4 Flash by default; Pro for deep agents, very large inputs, xhigh reasoning, hard-task
// hints and refactor/codebase-synthesis prompts; a multimodal model for images; fallbacks
// Flash -> Pro -> frontier and Pro -> frontier. Built with componentize-js (build.mjs).
import { log } from 'switchyard:policy/log@0.1.0';

const DEFAULTS = {
  flash_model: 'deepseek-v4-flash',
  pro_model: 'deepseek-v4-pro',
  frontier_model: 'gpt-5.5',
  vision_model: 'gpt-5.5',
  agent_depth_threshold: 10,
  large_input_tokens: 200000,
  pro_reasoning_efforts: ['xhigh', 'max'],
  pro_hints: ['difficulty=hard', 'tier=pro', 'tier=strong'],
  flash_hints: ['tier=flash', 'tier=fast', 'tier=cheap'],
  pro_phrases: [
    'refactor across', 'multi-file refactor', 'across multiple files', 'across all files',
    'across the codebase', 'across the repo', 'entire codebase', 'whole codebase',
    'entire repository', 'whole repository', 'every module', 'architecture review',
    'migrate the codebase',
  ],
  budget_guard: 0.9,
  honor_requested_model: true,
  cache: 'off',
  cache_ttl_seconds: null,
};

const CACHE_MODES = new Set(['off', 'read-only', 'write-only', 'read-write']);
const PRO_REASONS = new Set(['agent-depth', 'large-input', 'reasoning-effort', 'pro-hint', 'hard-task']);

function parseConfig(text) {
  const raw = text.trim() ? JSON.parse(text) : {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new Error('invalid policy config: expected an object');
  }
  const unknown = Object.keys(raw).filter((k) => !(k in DEFAULTS)).sort();
  if (unknown.length) throw new Error(`invalid policy config: unknown field \`${unknown[0]}\``);
  return { ...DEFAULTS, ...raw };
}

function splitHint(spec) {
  const i = spec.indexOf('=');
  if (i <= 0 || i === spec.length - 1) return null;
  return [spec.slice(0, i), spec.slice(i + 1)];
}

function validate(config) {
  for (const field of ['flash_model', 'pro_model', 'frontier_model', 'vision_model']) {
    if (!String(config[field]).trim()) return `${field} must name a model`;
  }
  if (!CACHE_MODES.has(config.cache)) {
    return `cache: unknown mode \`${config.cache}\` (expected off, read-only, write-only or read-write)`;
  }
  if (!(config.budget_guard >= 0 && config.budget_guard <= 1)) {
    return `budget_guard must be between 0 and 1, got ${config.budget_guard}`;
  }
  for (const spec of [...config.pro_hints, ...config.flash_hints]) {
    if (!splitHint(spec)) return `hint \`${spec}\` must look like key=value`;
  }
  return null;
}

function hint(request, key) {
  const found = request.hints.find((p) => p.key.toLowerCase() === key.toLowerCase());
  return found ? found.value : undefined;
}

function anyHint(specs, request) {
  return specs.some((spec) => {
    const parsed = splitHint(spec);
    if (!parsed) return false;
    const value = hint(request, parsed[0]);
    return value !== undefined && value.toLowerCase() === parsed[1].toLowerCase();
  });
}

function budgetUsedFraction(b) {
  const daily = b.dailyLimitUsd ? b.spentTodayUsd / b.dailyLimitUsd : undefined;
  const monthly = b.monthlyLimitUsd ? b.spentMonthUsd / b.monthlyLimitUsd : undefined;
  if (daily !== undefined && monthly !== undefined) return Math.max(daily, monthly);
  return daily !== undefined ? daily : monthly;
}

function proReason(config, request) {
  if (request.toolCallsSoFar > config.agent_depth_threshold) return 'agent-depth';
  if (Number(request.estimatedInputTokens) > config.large_input_tokens) return 'large-input';
  const effort = request.reasoningEffort;
  if (effort !== undefined && config.pro_reasoning_efforts.some((e) => e.toLowerCase() === effort.toLowerCase())) {
    return 'reasoning-effort';
  }
  if (anyHint(config.pro_hints, request)) return 'pro-hint';
  const text = request.lastUserExcerpt.toLowerCase();
  if (config.pro_phrases.some((p) => text.includes(p.toLowerCase()))) return 'hard-task';
  return undefined;
}

function chain(config, reason, requested) {
  if (reason === 'requested') {
    const def = [config.flash_model, config.pro_model, config.frontier_model];
    const i = def.indexOf(requested);
    return i >= 0 ? def.slice(i) : [requested, config.frontier_model];
  }
  if (reason === 'images') return [config.vision_model, config.frontier_model];
  if (PRO_REASONS.has(reason)) return [config.pro_model, config.frontier_model];
  return [config.flash_model, config.pro_model, config.frontier_model];
}

function usableChain(config, reason, request, needed) {
  const candidates = new Map(request.candidates.map((c) => [c.model, c]));
  const result = [];
  for (const model of chain(config, reason, request.requestedModel)) {
    if (result.some(([m]) => m === model)) continue;
    const c = candidates.get(model);
    if (c && Number(c.contextWindow) >= needed) result.push([model, c.health]);
  }
  // Failing upstreams last, the rest in order (Array.prototype.sort is stable).
  return result.sort((a, b) => (a[1] === 'unavailable') - (b[1] === 'unavailable'));
}

function decideWith(config, request) {
  const models = new Set(request.candidates.map((c) => c.model));
  let reason;
  if (request.hasImages) reason = 'images';
  else if (config.honor_requested_model && models.has(request.requestedModel)) reason = 'requested';
  else if (anyHint(config.flash_hints, request)) reason = 'flash-hint';
  else {
    reason = proReason(config, request);
    const used = budgetUsedFraction(request.budget);
    if (reason !== undefined && used !== undefined && used >= config.budget_guard) reason = 'budget-guard';
    else if (reason === undefined) reason = 'default';
  }
  const needed = Number(request.estimatedInputTokens) + Number(request.maxOutputTokens ?? 0n);
  let usable = usableChain(config, reason, request, needed);
  let downgraded = false;
  if (usable.length === 0 && reason !== 'images') {
    usable = usableChain(config, 'default', request, needed);
    downgraded = usable.length > 0;
  }
  if (usable.length === 0) {
    log('warn', `no allowed model fits a ${needed}-token request (${reason})`);
    return {
      tag: 'reject',
      val: {
        status: 400,
        code: 'no_suitable_model',
        message: `none of this tenant's models can serve this request (${needed} tokens needed)`,
      },
    };
  }
  const tags = [{ key: 'reason', value: reason }];
  if (downgraded) tags.push({ key: 'downgraded', value: 'true' });
  return {
    tag: 'route',
    val: {
      primary: { model: usable[0][0], upstream: undefined },
      fallbacks: usable.slice(1).map(([m]) => ({ model: m, upstream: undefined })),
      reasoningEffort: undefined,
      maxOutputTokens: undefined,
      cache: CACHE_MODES.has(config.cache) ? config.cache : 'off',
      cacheTtlSeconds: config.cache_ttl_seconds ?? undefined,
      tags,
    },
  };
}

export function validateConfig(text) {
  let problem;
  try {
    problem = validate(parseConfig(text));
  } catch (e) {
    problem = e.message;
  }
  if (problem) throw problem;
}

export function decide(request) {
  let config;
  try {
    config = parseConfig(request.config);
  } catch (e) {
    return { tag: 'reject', val: { status: 503, code: 'policy_config_invalid', message: e.message } };
  }
  return decideWith(config, request);
}
