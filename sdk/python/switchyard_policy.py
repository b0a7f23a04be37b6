"""Write Switchyard routing policies in Python, against contract switchyard:policy@0.2.0
(wit/policy.wit), built with componentize-py.

A thin layer over the generated bindings (`componentize-py -d wit -w policy bindings DIR`): keyword
constructors that fill every field the contract has (so a policy keeps working when it gains one),
config parsing with defaults, and the helpers of the Rust SDK (sdk/src): `hint_matches_any`,
`mentions_any`, `budget_used_fraction`, `first_usable`. Bundle it with the policy by passing its
folder to componentize-py (`-p sdk/python`); scripts/build-policies.sh does.

    import switchyard_policy as sp

    DEFAULTS = {"cheap": "deepseek-v4-flash", "strong": "deepseek-v4-pro", "cache": sp.CacheMode.OFF}

    def decide(c, request):
        chain = [c.strong, c.cheap] if request.tool_calls_so_far > 10 else [c.cheap, c.strong]
        return sp.first_usable(request, chain, cache=c.cache, tags={"reason": "default"})

    WitWorld = sp.policy(DEFAULTS, decide)

The summary, candidates and outcomes are the bindings' dataclasses (`request.tool_calls_so_far`,
`candidate.context_window`...); `switchyard_policy_testing` builds them for native tests.
"""
import json
import re
from enum import Enum
from types import SimpleNamespace

from componentize_py_types import Err
from wit_world.imports import log as _log
from wit_world.imports import state as _state
from wit_world.imports.types import (
    CacheMode,
    ConversationSource,
    Decision_Reject,
    Decision_Route,
    Endpoint,
    Health,
    Pair,
    Rejection,
    Route,
    Target,
)

__all__ = [
    "CacheMode", "ConfigError", "Err", "ConversationSource", "Decision_Reject", "Decision_Route", "Endpoint",
    "Health", "Config", "is_reject",
    "budget_used_fraction", "candidate", "check_hints", "debug", "enum_name", "error",
    "first_usable", "hint", "hint_matches_any", "info", "label", "mentions_any", "parse_config",
    "parse_enum", "policy", "rate_limit_headroom", "reject", "route", "state", "target",
    "tokens_needed", "upstream_signals", "usable", "warn",
]


# --- contract enums --------------------------------------------------------------------------

def enum_name(value):
    """The WIT name of a contract enum value: `CacheMode.READ_WRITE` -> "read-write"."""
    return value.name.lower().replace("_", "-")


def _enum_what(cls):
    """`CacheMode` -> "cache mode"."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).lower()


def parse_enum(cls, name):
    """The value of contract enum `cls` named `name` (its WIT name, or a value of it already);
    ConfigError otherwise, e.g. "unknown cache mode `sometimes` (expected off, read-only, ...)"."""
    if isinstance(name, cls):
        return name
    for value in cls:
        if enum_name(value) == name:
            return value
    names = [enum_name(v) for v in cls]
    expected = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    raise ConfigError(f"unknown {_enum_what(cls)} `{name}` (expected {expected})")


# --- config ------------------------------------------------------------------------------------

class ConfigError(ValueError):
    """A config the policy refuses; its message is the reason the host reports."""


class Config(SimpleNamespace):
    """A parsed config: the defaults, overridden by the tenant's values, as attributes."""


def _kind(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return None


def parse_config(text, defaults):
    """Parses a tenant's config (JSON; empty means `{}`) over `defaults`. Refuses, with
    ConfigError, a config that is not an object, a key `defaults` lacks, and a value of another
    JSON type than its default (a default of None takes anything). A default that is a contract
    enum (e.g. `CacheMode.OFF`) reads the enum's WIT names ("read-write")."""
    try:
        raw = json.loads(text) if text and text.strip() else {}
    except ValueError as e:
        raise ConfigError(f"invalid policy config: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError("invalid policy config: expected an object")
    unknown = sorted(set(raw) - set(defaults))
    if unknown:
        raise ConfigError(f"invalid policy config: unknown field `{unknown[0]}`")
    values = dict(defaults)
    for key, value in raw.items():
        default = defaults[key]
        if isinstance(default, Enum):
            try:
                value = parse_enum(type(default), value)
            except ConfigError as e:
                raise ConfigError(f"invalid policy config: {key}: {e}") from None
        elif default is not None and value is not None and _kind(value) != _kind(default):
            raise ConfigError(f"invalid policy config: `{key}` must be {_kind(default)}")
        values[key] = value
    return Config(**values)


def _split_hint(spec):
    key, sep, value = spec.partition("=")
    return (key, value) if sep and key and value else None


def check_hints(specs):
    """Raises ConfigError for the first hint spec that is not `key=value`."""
    for spec in specs:
        if _split_hint(spec) is None:
            raise ConfigError(f"hint `{spec}` must look like key=value")


# --- reading the request -----------------------------------------------------------------------

def hint(request, key):
    """The first routing hint named `key` (case-insensitive), or None."""
    key = key.lower()
    for pair in request.hints:
        if pair.key.lower() == key:
            return pair.value
    return None


def hint_matches_any(request, specs):
    """Whether a hint matches any `key=value` of `specs`, ignoring case. Specs that are not
    `key=value` never match (check_hints refuses them in a config)."""
    for spec in specs:
        parsed = _split_hint(spec)
        if parsed:
            value = hint(request, parsed[0])
            if value is not None and value.lower() == parsed[1].lower():
                return True
    return False


def mentions_any(request, phrases):
    """Whether the last user message (or `request`, if it is a string) contains any of `phrases`,
    ignoring case."""
    text = (request if isinstance(request, str) else request.last_user_excerpt).lower()
    return any(p.lower() in text for p in phrases)


def _share(spent, limit):
    return spent / limit if limit else None


def _tightest(values, pick):
    values = [v for v in values if v is not None]
    return pick(values) if values else None


def budget_used_fraction(request):
    """Share of the tightest budget already spent, from 0.0 up; None without budgets."""
    b = request.budget
    return _tightest(
        [_share(b.spent_today_usd, b.daily_limit_usd), _share(b.spent_month_usd, b.monthly_limit_usd)],
        max,
    )


def rate_limit_headroom(request):
    """Share of the tightest rate limit left this minute (1.0 untouched); None without limits."""
    r = request.rate_limits
    return _tightest([
        _share(r.requests_remaining, r.requests_per_minute) if r.requests_remaining is not None else None,
        _share(r.tokens_remaining, r.tokens_per_minute) if r.tokens_remaining is not None else None,
    ], min)


def tokens_needed(request):
    """The context a model needs for the request: the prompt plus the completion cap."""
    return request.estimated_input_tokens + (request.max_output_tokens or 0)


def candidate(request, model):
    """The candidate named `model`, if the tenant may use it."""
    for c in request.candidates:
        if c.model == model:
            return c
    return None


def label(candidate, key):
    """The candidate's catalog label `key` (case-insensitive), or None."""
    key = key.lower()
    for pair in candidate.labels:
        if pair.key.lower() == key:
            return pair.value
    return None


def upstream_signals(candidate, upstream=None):
    """What the host has seen of the candidate on `upstream` (default: the one it would use)."""
    upstream = upstream or candidate.upstream
    for s in candidate.upstreams:
        if s.upstream == upstream:
            return s
    return None


def usable(request, chain):
    """The usable part of `chain` (model names), as candidates: models the tenant may use, each
    once, whose context window holds the request, unavailable ones moved last."""
    needed = tokens_needed(request)
    found = []
    for model in chain:
        c = candidate(request, model)
        if c is not None and c.context_window >= needed and all(f.model != model for f in found):
            found.append(c)
    return sorted(found, key=lambda c: c.health == Health.UNAVAILABLE)  # stable


# --- decisions ---------------------------------------------------------------------------------

def target(model, upstream=None, *, first_token_deadline_ms=None, attempt_timeout_ms=None, retries=None):
    """One place to send the request, with its own limits."""
    return Target(model=model, upstream=upstream, first_token_deadline_ms=first_token_deadline_ms,
                  attempt_timeout_ms=attempt_timeout_ms, retries=retries)


def _target(t):
    return t if isinstance(t, Target) else target(t)


def _pairs(tags):
    if tags is None:
        return []
    items = tags.items() if isinstance(tags, dict) else tags
    return [t if isinstance(t, Pair) else Pair(key=t[0], value=t[1]) for t in items]


def route(primary, fallbacks=(), *, cache=CacheMode.OFF, cache_ttl_seconds=None, reasoning_effort=None,
          max_output_tokens=None, tags=None, keep_conversation=False, report_outcome=False):
    """Send the request to `primary` (a model name or a `target(...)`), then `fallbacks` in order.
    `cache` is a CacheMode or its WIT name; `tags` a dict or (key, value) pairs."""
    return Decision_Route(Route(
        primary=_target(primary),
        fallbacks=[_target(f) for f in fallbacks],
        reasoning_effort=reasoning_effort,
        max_output_tokens=max_output_tokens,
        cache=parse_enum(CacheMode, cache),
        cache_ttl_seconds=cache_ttl_seconds,
        tags=_pairs(tags),
        keep_conversation=keep_conversation,
        report_outcome=report_outcome,
    ))


def reject(status, code, message):
    """Refuse the request: `status` 400-499 or 503, `code` machine-readable."""
    return Decision_Reject(Rejection(status=status, code=code, message=message))


def is_reject(decision):
    """Whether `decision` refuses the request."""
    return isinstance(decision, Decision_Reject)


def first_usable(request, chain, **route_options):
    """Route along `usable(request, chain)` (keyword options as for `route`); when nothing in
    it is usable, a 400 rejection with code `no_suitable_model`."""
    found = usable(request, chain)
    if not found:
        return reject(400, "no_suitable_model",
                      f"none of this tenant's models can serve this request ({tokens_needed(request)} tokens needed)")
    return route(found[0].model, [c.model for c in found[1:]], **route_options)


# --- log and state -----------------------------------------------------------------------------

def _logger(level_name):
    def write(message):
        _log.log(getattr(_log.Level, level_name), message)
    write.__doc__ = f"Logs `message` at {level_name.lower()} level through the host."
    return write


debug, info, warn, error = (_logger(n) for n in ("DEBUG", "INFO", "WARN", "ERROR"))


class state:
    """The policy's own statistics, kept by the host per tenant (wit `state`): readable
    everywhere, writable only in on_outcome (`set` raises ValueError while deciding)."""

    @staticmethod
    def get(key):
        """The bytes under `key`, or None."""
        return _state.get(key)

    @staticmethod
    def set(key, value):
        """Stores bytes (or a str, as UTF-8) under `key`; ValueError with the host's reason if it
        refuses (while deciding, past the tenant's limits)."""
        try:
            _state.set(key, value.encode() if isinstance(value, str) else bytes(value))
        except Err as e:
            raise ValueError(e.value) from None

    @staticmethod
    def remove(key):
        _state.remove(key)

    @staticmethod
    def get_json(key, default=None):
        """The JSON value under `key`; `default` when there is none or it does not parse."""
        raw = _state.get(key)
        try:
            return default if raw is None else json.loads(raw)
        except ValueError:
            return default

    @staticmethod
    def set_json(key, value):
        state.set(key, json.dumps(value, separators=(",", ":")))


# --- the component's exports -------------------------------------------------------------------

def policy(defaults, decide, validate=None, on_outcome=None):
    """The class componentize-py exports (assign it to `WitWorld` in the policy module).

    Every call parses the tenant's config over `defaults` (parse_config) first. `validate(config)`
    returns an error message or None (or raises ConfigError); `decide(config, request)` returns a
    decision; `on_outcome(config, outcome)` learns (default: nothing). A config that no longer
    parses when deciding is a 503 `policy_config_invalid`, as in the Rust SDK."""
    import wit_world

    class WitWorld(wit_world.WitWorld):
        def validate_config(self, config):
            try:
                parsed = parse_config(config, defaults)
                problem = validate(parsed) if validate else None
            except ConfigError as e:
                problem = str(e)
            if problem:
                raise Err(problem)

        def decide(self, request):
            try:
                config = parse_config(request.config, defaults)
            except ConfigError as e:
                return reject(503, "policy_config_invalid", str(e))
            return decide(config, request)

        def on_outcome(self, config, outcome):
            if on_outcome is None:
                return
            try:
                parsed = parse_config(config, defaults)
            except ConfigError as e:
                warn(f"outcome of {outcome.request_id} dropped: {e}")
                return
            on_outcome(parsed, outcome)

    return WitWorld
