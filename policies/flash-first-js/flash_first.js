// flash-first in JavaScript: the same routing rule as policies/flash-first (Rust), same config,
// same decisions (checked against tests/conformance/flash-first.json, natively and in the host).
//
// DeepSeek V4 Flash by default; Pro for deep agents, very large inputs, xhigh reasoning, hard-task
// hints and refactor/codebase-synthesis prompts; a multimodal model for images; fallbacks
// Flash -> Pro -> frontier and Pro -> frontier. Built with componentize-js (build.mjs) and the SDK
// module sdk/js/switchyard-policy.mjs.
import * as sp from '../../sdk/js/switchyard-policy.mjs';

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

function validate(c) {
  for (const field of ['flash_model', 'pro_model', 'frontier_model', 'vision_model']) {
    if (!String(c[field]).trim()) return `${field} must name a model`;
  }
  if (!(c.budget_guard >= 0 && c.budget_guard <= 1)) {
    return `budget_guard must be between 0 and 1, got ${c.budget_guard}`;
  }
  sp.checkHints([...c.pro_hints, ...c.flash_hints]);
  return undefined;
}

// Why a request goes where it goes; recorded as the `reason` tag.
function reason(c, r) {
  if (r.hasImages) return 'images';
  if (c.honor_requested_model && sp.candidate(r, r.requestedModel)) return 'requested';
  if (sp.hintMatchesAny(r, c.flash_hints)) return 'flash-hint';
  const effort = r.reasoningEffort?.toLowerCase();
  let hard;
  if (r.toolCallsSoFar > c.agent_depth_threshold) hard = 'agent-depth';
  else if (r.estimatedInputTokens > c.large_input_tokens) hard = 'large-input';
  else if (effort !== undefined && c.pro_reasoning_efforts.some((e) => e.toLowerCase() === effort)) hard = 'reasoning-effort';
  else if (sp.hintMatchesAny(r, c.pro_hints)) hard = 'pro-hint';
  else if (sp.mentionsAny(r, c.pro_phrases)) hard = 'hard-task';
  else return 'default';
  const used = sp.budgetUsedFraction(r);
  return used !== undefined && used >= c.budget_guard ? 'budget-guard' : hard;
}

function decideWith(c, r) {
  const why = reason(c, r);
  const defaultChain = [c.flash_model, c.pro_model, c.frontier_model];
  let chain;
  if (why === 'images') chain = [c.vision_model, c.frontier_model];
  else if (why === 'requested') {
    // The requested model, then whatever is stronger on the default chain.
    const i = defaultChain.indexOf(r.requestedModel);
    chain = i >= 0 ? defaultChain.slice(i) : [r.requestedModel, c.frontier_model];
  } else if (['default', 'flash-hint', 'budget-guard'].includes(why)) chain = defaultChain;
  else chain = [c.pro_model, c.frontier_model];
  const tags = { reason: why };
  // Allowed models whose context holds the request; failing upstreams last. If the strong models
  // are not allowed (or too small), serve it on the default chain.
  if (!sp.usable(r, chain).length && why !== 'images' && sp.usable(r, defaultChain).length) {
    chain = defaultChain;
    tags.downgraded = 'true';
  }
  const decision = sp.firstUsable(r, chain, { cache: c.cache, cacheTtlSeconds: c.cache_ttl_seconds, tags });
  if (sp.isReject(decision)) sp.warn(`no allowed model fits a ${sp.tokensNeeded(r)}-token request (${why})`);
  return decision;
}

export const { validateConfig, decide, onOutcome } = sp.policy({
  defaults: DEFAULTS,
  enums: { cache: sp.CacheMode },
  validate,
  decide: decideWith,
});
