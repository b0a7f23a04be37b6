"""flash-first in Python: the same routing rule as policies/flash-first (Rust), same config, same
decisions (checked against tests/conformance/flash-first.json, natively and in the host).

DeepSeek V4 Flash by default; Pro for deep agents, very large inputs, xhigh reasoning, hard-task
hints and refactor/codebase-synthesis prompts; a multimodal model for images; fallbacks
Flash -> Pro -> frontier and Pro -> frontier. Built with componentize-py and the SDK module
sdk/python/switchyard_policy.py (scripts/build-policies.sh).
"""
import switchyard_policy as sp

DEFAULTS = {
    "flash_model": "deepseek-v4-flash",
    "pro_model": "deepseek-v4-pro",
    "frontier_model": "gpt-5.5",
    "vision_model": "gpt-5.5",
    "agent_depth_threshold": 10,
    "large_input_tokens": 200_000,
    "pro_reasoning_efforts": ["xhigh", "max"],
    "pro_hints": ["difficulty=hard", "tier=pro", "tier=strong"],
    "flash_hints": ["tier=flash", "tier=fast", "tier=cheap"],
    "pro_phrases": [
        "refactor across", "multi-file refactor", "across multiple files", "across all files",
        "across the codebase", "across the repo", "entire codebase", "whole codebase",
        "entire repository", "whole repository", "every module", "architecture review",
        "migrate the codebase",
    ],
    "budget_guard": 0.9,
    "honor_requested_model": True,
    "cache": sp.CacheMode.OFF,
    "cache_ttl_seconds": None,
}


def validate(c):
    for field in ("flash_model", "pro_model", "frontier_model", "vision_model"):
        if not str(getattr(c, field)).strip():
            return f"{field} must name a model"
    if not 0.0 <= c.budget_guard <= 1.0:
        return f"budget_guard must be between 0 and 1, got {c.budget_guard}"
    sp.check_hints(c.pro_hints + c.flash_hints)
    return None


def reason(c, r):
    """Why a request goes where it goes; recorded as the `reason` tag."""
    if r.has_images:
        return "images"
    if c.honor_requested_model and sp.candidate(r, r.requested_model):
        return "requested"
    if sp.hint_matches_any(r, c.flash_hints):
        return "flash-hint"
    efforts = {e.lower() for e in c.pro_reasoning_efforts}
    if r.tool_calls_so_far > c.agent_depth_threshold:
        hard = "agent-depth"
    elif r.estimated_input_tokens > c.large_input_tokens:
        hard = "large-input"
    elif r.reasoning_effort is not None and r.reasoning_effort.lower() in efforts:
        hard = "reasoning-effort"
    elif sp.hint_matches_any(r, c.pro_hints):
        hard = "pro-hint"
    elif sp.mentions_any(r, c.pro_phrases):
        hard = "hard-task"
    else:
        return "default"
    used = sp.budget_used_fraction(r)
    return "budget-guard" if used is not None and used >= c.budget_guard else hard


def decide(c, r):
    why = reason(c, r)
    default = [c.flash_model, c.pro_model, c.frontier_model]
    if why == "images":
        chain = [c.vision_model, c.frontier_model]
    elif why == "requested":
        # The requested model, then whatever is stronger on the default chain.
        chain = default[default.index(r.requested_model):] if r.requested_model in default \
            else [r.requested_model, c.frontier_model]
    elif why in ("default", "flash-hint", "budget-guard"):
        chain = default
    else:
        chain = [c.pro_model, c.frontier_model]
    tags = {"reason": why}
    # Allowed models whose context holds the request; failing upstreams last. If the strong
    # models are not allowed (or too small), serve it on the default chain.
    if not sp.usable(r, chain) and why != "images" and sp.usable(r, default):
        chain, tags["downgraded"] = default, "true"
    decision = sp.first_usable(r, chain, cache=c.cache, cache_ttl_seconds=c.cache_ttl_seconds, tags=tags)
    if sp.is_reject(decision):
        sp.warn(f"no allowed model fits a {sp.tokens_needed(r)}-token request ({why})")
    return decision


WitWorld = sp.policy(DEFAULTS, decide, validate)
