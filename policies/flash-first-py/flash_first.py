"""flash-first in Python: the same routing rule as policies/flash-first (Rust), same config, same
decisions (checked against tests/conformance/flash-first.json in CI).

DeepSeek V4 Flash by default; Pro for deep agents, very large inputs, xhigh reasoning, hard-task
hints and refactor/codebase-synthesis prompts; a multimodal model for images; fallbacks
Flash -> Pro -> frontier and Pro -> frontier. Built with componentize-py (scripts/build-policies.sh).
"""
import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import log
from wit_world.imports.types import (
    CacheMode,
    Decision_Reject,
    Decision_Route,
    Health,
    Pair,
    Rejection,
    Route,
    Target,
)

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
    "cache": "off",
    "cache_ttl_seconds": None,
}

CACHE_MODES = {
    "off": CacheMode.OFF,
    "read-only": CacheMode.READ_ONLY,
    "write-only": CacheMode.WRITE_ONLY,
    "read-write": CacheMode.READ_WRITE,
}

PRO_REASONS = ("agent-depth", "large-input", "reasoning-effort", "pro-hint", "hard-task")


class ConfigError(Exception):
    pass


def parse_config(text):
    raw = json.loads(text) if text.strip() else {}
    if not isinstance(raw, dict):
        raise ConfigError("invalid policy config: expected an object")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"invalid policy config: unknown field `{unknown[0]}`")
    config = dict(DEFAULTS)
    config.update(raw)
    return config


def validate(config):
    for field in ("flash_model", "pro_model", "frontier_model", "vision_model"):
        if not str(config[field]).strip():
            return f"{field} must name a model"
    if config["cache"] not in CACHE_MODES:
        return f"cache: unknown mode `{config['cache']}` (expected off, read-only, write-only or read-write)"
    if not 0.0 <= config["budget_guard"] <= 1.0:
        return f"budget_guard must be between 0 and 1, got {config['budget_guard']}"
    for spec in config["pro_hints"] + config["flash_hints"]:
        if split_hint(spec) is None:
            return f"hint `{spec}` must look like key=value"
    return None


def split_hint(spec):
    key, sep, value = spec.partition("=")
    if not sep or not key or not value:
        return None
    return key, value


def hint(request, key):
    for pair in request.hints:
        if pair.key.lower() == key.lower():
            return pair.value
    return None


def any_hint(specs, request):
    for spec in specs:
        parsed = split_hint(spec)
        if parsed:
            value = hint(request, parsed[0])
            if value is not None and value.lower() == parsed[1].lower():
                return True
    return False


def budget_used_fraction(budget):
    daily = budget.spent_today_usd / budget.daily_limit_usd if budget.daily_limit_usd else None
    monthly = budget.spent_month_usd / budget.monthly_limit_usd if budget.monthly_limit_usd else None
    if daily is not None and monthly is not None:
        return max(daily, monthly)
    return daily if daily is not None else monthly


def pro_reason(config, request):
    if request.tool_calls_so_far > config["agent_depth_threshold"]:
        return "agent-depth"
    if request.estimated_input_tokens > config["large_input_tokens"]:
        return "large-input"
    effort = request.reasoning_effort
    if effort is not None and any(e.lower() == effort.lower() for e in config["pro_reasoning_efforts"]):
        return "reasoning-effort"
    if any_hint(config["pro_hints"], request):
        return "pro-hint"
    text = request.last_user_excerpt.lower()
    if any(p.lower() in text for p in config["pro_phrases"]):
        return "hard-task"
    return None


def chain(config, reason, requested):
    if reason == "requested":
        default = [config["flash_model"], config["pro_model"], config["frontier_model"]]
        if requested in default:
            return default[default.index(requested):]
        return [requested, config["frontier_model"]]
    if reason == "images":
        return [config["vision_model"], config["frontier_model"]]
    if reason in PRO_REASONS:
        return [config["pro_model"], config["frontier_model"]]
    return [config["flash_model"], config["pro_model"], config["frontier_model"]]


def usable_chain(config, reason, request, needed):
    candidates = {c.model: c for c in request.candidates}
    result = []
    for model in chain(config, reason, request.requested_model):
        if any(m == model for m, _ in result):
            continue
        c = candidates.get(model)
        if c is not None and c.context_window >= needed:
            result.append((model, c.health))
    # Failing upstreams last, the rest in order (sorted() is stable).
    return sorted(result, key=lambda item: item[1] == Health.UNAVAILABLE)


def decide(config, request):
    candidates = {c.model for c in request.candidates}
    if request.has_images:
        reason = "images"
    elif config["honor_requested_model"] and request.requested_model in candidates:
        reason = "requested"
    elif any_hint(config["flash_hints"], request):
        reason = "flash-hint"
    else:
        reason = pro_reason(config, request)
        used = budget_used_fraction(request.budget)
        if reason is not None and used is not None and used >= config["budget_guard"]:
            reason = "budget-guard"
        elif reason is None:
            reason = "default"

    needed = request.estimated_input_tokens + (request.max_output_tokens or 0)
    usable = usable_chain(config, reason, request, needed)
    downgraded = False
    if not usable and reason != "images":
        usable = usable_chain(config, "default", request, needed)
        downgraded = bool(usable)
    if not usable:
        log.log(log.Level.WARN, f"no allowed model fits a {needed}-token request ({reason})")
        return Decision_Reject(Rejection(
            status=400,
            code="no_suitable_model",
            message=f"none of this tenant's models can serve this request ({needed} tokens needed)",
        ))
    tags = [Pair("reason", reason)]
    if downgraded:
        tags.append(Pair("downgraded", "true"))
    return Decision_Route(Route(
        primary=Target(usable[0][0], None),
        fallbacks=[Target(m, None) for m, _ in usable[1:]],
        reasoning_effort=None,
        max_output_tokens=None,
        cache=CACHE_MODES.get(config["cache"], CacheMode.OFF),
        cache_ttl_seconds=config["cache_ttl_seconds"],
        tags=tags,
    ))


class WitWorld(wit_world.WitWorld):
    def validate_config(self, config: str) -> None:
        try:
            problem = validate(parse_config(config))
        except (ConfigError, ValueError, TypeError) as e:
            raise Err(str(e))
        if problem:
            raise Err(problem)

    def decide(self, request):
        try:
            config = parse_config(request.config)
        except (ConfigError, ValueError, TypeError) as e:
            return Decision_Reject(Rejection(503, "policy_config_invalid", str(e)))
        return decide(config, request)
