"""Native tests of the Python flash-first, no wasm needed: the generated bindings
(`componentize-py -d wit -w policy bindings DIR`) are plain Python dataclasses. The shared cases
come from tests/conformance/flash-first.json; the rest are Python's own.

    target/pytools/bin/componentize-py -d wit -w policy bindings target/pybindings
    cd policies/flash-first-py && PYTHONPATH=../../target/pybindings python3 -m unittest -q test_flash_first
"""
import json
import pathlib
import sys
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sdk" / "python"))

import switchyard_policy as sp  # noqa: E402
import switchyard_policy_testing as t  # noqa: E402

HOST = t.native_host()  # before the policy module is imported: it stands in for log and state

import flash_first  # noqa: E402

WORLD = flash_first.WitWorld()
FIXTURE = json.loads((ROOT / "tests" / "conformance" / "flash-first.json").read_text())


def fixture_request(r, config):
    """A fixture case's request, from the defaults its `about` names."""
    names = r.get("candidates")
    candidates = [c for c in t.example_catalog() if names is None or c.model in names]
    for c in candidates:
        c.health = getattr(sp.Health, r.get("health", {}).get(c.model, "healthy").upper())
    budget = r.get("budget")
    return t.summary(
        requested_model=r.get("requested_model", "auto"),
        estimated_input_tokens=r.get("input_tokens", 1000),
        max_output_tokens=r.get("max_output_tokens"),
        tool_calls_so_far=r.get("tool_calls", 0),
        reasoning_effort=r.get("reasoning_effort"),
        has_images=r.get("images", False),
        last_user_excerpt=r.get("excerpt", ""),
        hints=[tuple(p) for p in r.get("hints", [])],
        candidates=candidates,
        budget=t.budget(daily=tuple(budget)) if budget else t.budget(),
        config=json.dumps(config),
    )


def describe(d):
    """A decision in the fixture's terms (as tests/all/conformance.rs describes it)."""
    if sp.is_reject(d):
        return {"reject": {"status": d.value.status, "code": d.value.code}}
    r = d.value
    v = {"primary": r.primary.model, "fallbacks": [f.model for f in r.fallbacks]}
    for p in r.tags:
        if p.key == "reason":
            v["reason"] = p.value
        elif p.key == "downgraded":
            v["downgraded"] = p.value == "true"
    if r.cache != sp.CacheMode.OFF:
        v["cache"] = sp.enum_name(r.cache)
    if r.cache_ttl_seconds is not None:
        v["ttl"] = r.cache_ttl_seconds
    return v


class ConformanceTest(unittest.TestCase):
    def test_every_fixture_case(self):
        for case in FIXTURE["cases"]:
            with self.subTest(case["name"]):
                request = fixture_request(case["request"], case.get("config", {}))
                self.assertEqual(describe(t.decide(WORLD, request)), case["expect"])

    def test_every_fixture_config_check(self):
        for case in FIXTURE["config_validation"]:
            with self.subTest(case["config"]):
                text = json.dumps(case["config"])
                if case.get("ok"):
                    WORLD.validate_config(text)
                else:
                    with self.assertRaises(sp.Err) as e:
                        WORLD.validate_config(text)
                    self.assertIn(case["error_contains"], e.exception.value)


class PythonTest(unittest.TestCase):
    def setUp(self):
        HOST.reset()

    def test_a_refusal_is_logged_once(self):
        d = t.decide(WORLD, t.summary(has_images=True, candidates=[t.candidate("deepseek-v4-flash")]))
        self.assertTrue(sp.is_reject(d))
        self.assertEqual(len(HOST.logs), 1)
        self.assertIn("(images)", HOST.logs[0][1])

    def test_a_model_the_tenant_cannot_use_is_routed_not_pinned(self):
        d = t.decide(WORLD, t.summary(requested_model="gpt-4o", candidates=t.example_catalog()))
        self.assertEqual(d.value.primary.model, "deepseek-v4-flash")

    def test_config_values_of_the_wrong_type_are_refused(self):
        for bad, needle in [('{"agent_depth_threshold":"ten"}', "must be a number"), ('[1]', "an object"),
                            ('{"cache":"Off"}', "unknown cache mode `Off`"), ("{", "invalid policy config")]:
            with self.assertRaises(sp.Err) as e:
                WORLD.validate_config(bad)
            self.assertIn(needle, e.exception.value)
        d = t.decide(WORLD, t.summary(config='{"cache":"read-write"}', candidates=t.example_catalog()))
        self.assertEqual(d.value.cache, sp.CacheMode.READ_WRITE)

    def test_decisions_leave_the_0_2_knobs_to_the_host(self):
        r = t.decide(WORLD, t.summary(candidates=t.example_catalog())).value
        self.assertFalse(r.keep_conversation or r.report_outcome)
        self.assertIsNone(r.primary.first_token_deadline_ms)
        WORLD.on_outcome("{}", t.outcome())  # a no-op
        self.assertEqual(HOST.state, {})


class SdkTest(unittest.TestCase):
    """The SDK module's own behaviour (sdk/python), beyond what flash-first exercises."""

    def setUp(self):
        HOST.reset()

    def test_keyword_constructors_fill_every_field(self):
        d = sp.route(sp.target("a", "u1", first_token_deadline_ms=1500), ["b", sp.target("c", retries=2)],
                     cache="read-only", tags={"reason": "x"}, keep_conversation=True, report_outcome=True)
        r = d.value
        self.assertEqual((r.primary.upstream, r.primary.first_token_deadline_ms), ("u1", 1500))
        self.assertEqual([(f.model, f.retries) for f in r.fallbacks], [("b", None), ("c", 2)])
        self.assertEqual((r.cache, r.tags), (sp.CacheMode.READ_ONLY, [sp.Pair("reason", "x")]))
        self.assertTrue(r.keep_conversation and r.report_outcome)

    def test_helpers(self):
        r = t.summary(hints={"Tier": "Pro"}, last_user_excerpt="Refactor ACROSS the repo",
                      budget=t.budget(daily=(5.0, 10.0), monthly=(80.0, 100.0)),
                      rate_limits=t.rate_limits(requests_per_minute=100, requests_remaining=50),
                      candidates=[t.candidate("m", labels={"tier": "strong"},
                                              upstreams=[t.signals("test-upstream", ttft_p95_ms=600)])])
        self.assertTrue(sp.hint_matches_any(r, ["x=y", "tier=pro"]))
        self.assertFalse(sp.hint_matches_any(r, ["tier", "tier=flash"]))
        self.assertTrue(sp.mentions_any(r, ["refactor across"]))
        self.assertEqual(sp.budget_used_fraction(r), 0.8)
        self.assertEqual(sp.rate_limit_headroom(r), 0.5)
        m = sp.candidate(r, "m")
        self.assertEqual((sp.label(m, "TIER"), sp.upstream_signals(m).ttft_p95_ms), ("strong", 600))

    def test_state_is_read_only_while_deciding(self):
        seen = []

        def decide(c, r):
            try:
                sp.state.set("k", "v")
            except ValueError as e:
                seen.append(str(e))
            return sp.route("m", tags={"n": str(sp.state.get_json("n", 0))}, report_outcome=True)

        def learn(c, o):
            sp.state.set_json("n", sp.state.get_json("n", 0) + 1)

        world = sp.policy({}, decide, on_outcome=learn)()
        d = t.decide(world, t.summary())
        self.assertIn("read-only while deciding", seen[0])
        t.on_outcome(world, "{}", t.outcome_of(d))
        t.on_outcome(world, "{}", t.outcome_of(d))
        self.assertEqual(t.decide(world, t.summary()).value.tags, [sp.Pair("n", "2")])
        self.assertEqual(HOST.state, {"n": b"2"})


if __name__ == "__main__":
    unittest.main()
