"""Native tests for Python policies (CPython, no wasm): keyword builders for the contract's records
with every field defaulted, and a stand-in for the host's `log` and `state` imports.

    import switchyard_policy_testing as t
    host = t.native_host()                      # before importing the policy module
    import my_policy
    world = my_policy.WitWorld()
    d = t.decide(world, t.summary(tool_calls_so_far=12, candidates=t.example_catalog()))
    t.on_outcome(world, "{}", t.outcome_of(d, ttft_ms=900))
    host.state, host.logs                       # what the policy stored and logged

Needs the generated bindings on the path (`componentize-py -d wit -w policy bindings DIR`).
"""
from wit_world.imports import log as _log
from wit_world.imports import state as _state
from wit_world.imports.types import (
    Budget,
    Candidate,
    Conversation,
    ConversationSource,
    Decision_Route,
    Endpoint,
    Health,
    Outcome,
    Pair,
    RateLimits,
    RequestSummary,
    UpstreamSignals,
)
from componentize_py_types import Err

# The arrival time of a test request unless set: 2026-12-01T12:00:00Z.
RECEIVED_AT_UNIX_MS = 1_796_126_400_000


def _pairs(items):
    if items is None:
        return []
    items = items.items() if isinstance(items, dict) else items
    return [p if isinstance(p, Pair) else Pair(key=p[0], value=p[1]) for p in items]


def signals(upstream, **fields):
    """UpstreamSignals for `upstream`: healthy, idle, no samples, unless `fields` say otherwise."""
    values = dict(upstream=upstream, health=Health.HEALTHY, ttft_p50_ms=None, ttft_p95_ms=None,
                  error_rate=None, samples=0, in_flight=0, remaining_requests=None, remaining_tokens=None)
    values.update(fields)
    return UpstreamSignals(**values)


def candidate(model, **fields):
    """A Candidate: healthy on `test-upstream`, USD 1 / 0.1 / 2 per million tokens, 1M context,
    384K output, text only, no labels; `labels` may be a dict. Without `upstreams`, it lists its
    one upstream with the candidate's health."""
    values = dict(model=model, upstream="test-upstream", input_usd_per_mtok=1.0,
                  cached_input_usd_per_mtok=0.1, output_usd_per_mtok=2.0, price_window=None,
                  context_window=1_000_000, max_output_tokens=384_000, supports_images=False,
                  health=Health.HEALTHY, labels=[], upstreams=None)
    values.update(fields)
    values["labels"] = sorted(_pairs(values["labels"]), key=lambda p: p.key)
    if values["upstreams"] is None:
        values["upstreams"] = [signals(values["upstream"], health=values["health"])]
    return Candidate(**values)


def example_catalog():
    """An example catalog (not something the SDK knows): DeepSeek V4 Flash and Pro (text, 1M
    context) and gpt-5.5 (images, 400K), the models of flash-first and its conformance fixture."""
    return [
        candidate("deepseek-v4-flash", input_usd_per_mtok=0.14, cached_input_usd_per_mtok=0.0028,
                  output_usd_per_mtok=0.28, labels={"tier": "fast"}),
        candidate("deepseek-v4-pro", input_usd_per_mtok=0.435, cached_input_usd_per_mtok=0.003625,
                  output_usd_per_mtok=0.87, labels={"tier": "strong"}),
        candidate("gpt-5.5", input_usd_per_mtok=5.0, cached_input_usd_per_mtok=0.5, output_usd_per_mtok=30.0,
                  context_window=400_000, supports_images=True, labels={"tier": "frontier"}),
    ]


def budget(daily=None, monthly=None):
    """A Budget from `(spent, limit)` pairs (None: no such budget)."""
    spent_today, daily_limit = daily or (0.0, None)
    spent_month, monthly_limit = monthly or (0.0, None)
    return Budget(spent_today_usd=spent_today, daily_limit_usd=daily_limit,
                  spent_month_usd=spent_month, monthly_limit_usd=monthly_limit)


def rate_limits(**fields):
    """RateLimits, all None unless given."""
    values = dict(requests_per_minute=None, requests_remaining=None, tokens_per_minute=None, tokens_remaining=None)
    values.update(fields)
    return RateLimits(**values)


def conversation(**fields):
    """A Conversation: key 0 from the prefix, no turns yet, unless given."""
    values = dict(key=0, source=ConversationSource.PREFIX, turns=0, last_model=None, last_upstream=None,
                  last_cache_hit_ratio=None, since_last_ms=None)
    values.update(fields)
    return Conversation(**values)


def summary(**fields):
    """A RequestSummary asking for `auto`: no candidates, 1,000 input tokens, one message, a new
    conversation, no budgets or limits, config `{}`, seed 0; any field by keyword (`hints` may be
    a dict or pairs; `budget` a Budget or a dict of budget()'s arguments)."""
    values = dict(request_id="req_test", tenant="test-tenant", endpoint=Endpoint.CHAT_COMPLETIONS,
                  requested_model="auto", streaming=False, estimated_input_tokens=1_000,
                  max_output_tokens=None, message_count=1, tools_offered=0, tool_calls_so_far=0, messages_since_user=0,
                  reasoning_effort=None, has_images=False, last_user_excerpt="", hints=[], candidates=[],
                  config="{}", budget=budget(), rate_limits=rate_limits(), conversation=conversation(),
                  received_at_unix_ms=RECEIVED_AT_UNIX_MS, seed=0)
    values.update(fields)
    values["hints"] = _pairs(values["hints"])
    if isinstance(values["budget"], dict):
        values["budget"] = budget(**values["budget"])
    return RequestSummary(**values)


def outcome(model="m", **fields):
    """An Outcome: request `req_test` served by `model` on `test-upstream` with a 200, 300 ms to
    the first byte, 1,000 in all, 1,000 input tokens (none cached), 100 output, USD 0.001."""
    values = dict(request_id="req_test", endpoint=Endpoint.CHAT_COMPLETIONS, conversation_key=0, model=model,
                  upstream="test-upstream", status=200, ttft_ms=300, total_ms=1_000, input_tokens=1_000,
                  cached_input_tokens=0, output_tokens=100, cost_usd=0.001, fallbacks=0, attempts=[], tags=[],
                  received_at_unix_ms=RECEIVED_AT_UNIX_MS)
    values.update(fields)
    values["tags"] = _pairs(values["tags"])
    return Outcome(**values)


def outcome_of(decision, **fields):
    """The outcome of `decision` served by its primary, with its tags (a rejection: nothing
    served, with its status)."""
    if isinstance(decision, Decision_Route):
        r = decision.value
        base = dict(model=r.primary.model, upstream=r.primary.upstream or "test-upstream", tags=r.tags)
    else:
        base = dict(model=None, upstream=None, status=decision.value.status, ttft_ms=None)
    base.update(fields)
    return outcome(**base)


class NativeHost:
    """Stands in for the host's imports: log lines go to `logs` as (Level, message), state to the
    `state` dict of bytes, which refuses writes while `decide` (below) runs, as the host does."""

    def __init__(self):
        self.logs = []
        self.state = {}
        self.deciding = False

    def reset(self):
        self.logs.clear()
        self.state.clear()
        self.deciding = False

    def _set(self, key, value):
        if self.deciding:
            raise Err("state is read-only while deciding: write it in on-outcome")
        self.state[key] = bytes(value)

    def _remove(self, key):
        if not self.deciding:
            self.state.pop(key, None)


_HOST = None


def native_host():
    """Installs the stand-in (once per process) and returns it, emptied."""
    global _HOST
    if _HOST is None:
        _HOST = NativeHost()
        _log.log = lambda level, message: _HOST.logs.append((level, message))
        _state.get = lambda key: _HOST.state.get(key)
        _state.set = _HOST._set
        _state.remove = _HOST._remove
    _HOST.reset()
    return _HOST


def decide(world, request):
    """`world.decide(request)` with state read-only, as the host calls it."""
    host = native_host() if _HOST is None else _HOST
    host.deciding = True
    try:
        return world.decide(request)
    finally:
        host.deciding = False


def on_outcome(world, config, outcome):
    """`world.on_outcome(config, outcome)` with state writable."""
    world.on_outcome(config, outcome)
