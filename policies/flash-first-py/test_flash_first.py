"""Native unit tests of the Python flash-first, no wasm needed: the generated bindings
(`componentize-py -d wit -w policy bindings DIR`) are plain Python dataclasses.

    componentize-py -d ../../wit -w policy bindings ../../target/pybindings
    PYTHONPATH=../../target/pybindings python -m unittest test_flash_first
"""
import json
import unittest

from wit_world.imports import log
from wit_world.imports.types import (
    Budget, Candidate, Decision_Reject, Decision_Route, Endpoint, Health, Pair, RequestSummary,
)

LOGGED = []
log.log = lambda level, message: LOGGED.append((level, message))  # the host import, stubbed

import flash_first  # noqa: E402  (after the stub)

POLICY = flash_first.WitWorld()


def candidate(model, context=1_000_000, images=False, health=Health.HEALTHY):
    return Candidate(model, "u", 0.14, 0.0028, 0.28, context, 384_000, images, health)


def request(**kw):
    r = RequestSummary(
        request_id="r", tenant="t", endpoint=Endpoint.CHAT_COMPLETIONS, requested_model="auto",
        streaming=False, estimated_input_tokens=1000, max_output_tokens=None, message_count=1,
        tools_offered=0, tool_calls_so_far=0, reasoning_effort=None, has_images=False,
        last_user_excerpt="", hints=[],
        candidates=[candidate("deepseek-v4-flash"), candidate("deepseek-v4-pro"), candidate("gpt-5.5", 400_000, True)],
        config="{}", budget=Budget(0.0, None, 0.0, None), seed=0,
    )
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def route(decision):
    assert isinstance(decision, Decision_Route), decision
    r = decision.value
    return r.primary.model, [t.model for t in r.fallbacks], {p.key: p.value for p in r.tags}


class FlashFirstTest(unittest.TestCase):
    def test_default_is_flash_with_the_full_chain(self):
        self.assertEqual(route(POLICY.decide(request())), ("deepseek-v4-flash", ["deepseek-v4-pro", "gpt-5.5"], {"reason": "default"}))

    def test_deep_agents_go_to_pro(self):
        self.assertEqual(route(POLICY.decide(request(tool_calls_so_far=11)))[0], "deepseek-v4-pro")
        self.assertEqual(route(POLICY.decide(request(tool_calls_so_far=10)))[0], "deepseek-v4-flash")

    def test_hints_and_phrases(self):
        self.assertEqual(route(POLICY.decide(request(hints=[Pair("difficulty", "HARD")])))[2]["reason"], "pro-hint")
        self.assertEqual(route(POLICY.decide(request(last_user_excerpt="a multi-file refactor please")))[2]["reason"], "hard-task")

    def test_images_and_refusal(self):
        self.assertEqual(route(POLICY.decide(request(has_images=True)))[0], "gpt-5.5")
        LOGGED.clear()
        d = POLICY.decide(request(has_images=True, candidates=[candidate("deepseek-v4-flash")]))
        self.assertIsInstance(d, Decision_Reject)
        self.assertEqual(d.value.status, 400)
        self.assertEqual(len(LOGGED), 1)

    def test_unavailable_goes_last(self):
        cands = [candidate("deepseek-v4-flash", health=Health.UNAVAILABLE), candidate("deepseek-v4-pro"), candidate("gpt-5.5", 400_000, True)]
        self.assertEqual(route(POLICY.decide(request(candidates=cands)))[:2], ("deepseek-v4-pro", ["gpt-5.5", "deepseek-v4-flash"]))

    def test_config(self):
        POLICY.validate_config("{}")
        for bad, needle in [('{"cache":"sometimes"}', "cache"), ('{"typo":1}', "typo"), ('{"pro_hints":["x"]}', "key=value")]:
            with self.assertRaises(Exception) as e:
                POLICY.validate_config(bad)
            self.assertIn(needle, str(e.exception.value))
        d = POLICY.decide(request(config=json.dumps({"agent_depth_threshold": 1}), tool_calls_so_far=2))
        self.assertEqual(route(d)[0], "deepseek-v4-pro")


if __name__ == "__main__":
    unittest.main()
