"""What ``make mutation`` mutates, which tests judge each module, and its equivalent mutants.

Each target names its module, the tests that are that module's own (fast, in-process: a
mutant's tests run once per mutant), and the mutants that cannot change behaviour, by the
name ``tools/mutation.py --list`` prints, each with the reason. An equivalent mutant is
left out of the score; a name that no longer matches any mutant is an error, so the list
follows the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TARGETS", "Target"]


@dataclass(frozen=True)
class Target:
    path: str  # relative to the repository root
    tests: tuple[str, ...]
    equivalent: dict[str, str] = field(default_factory=dict)  # mutant name -> why

    @property
    def import_name(self) -> str:
        module = self.path.removesuffix(".py").replace("/", ".")
        if module.startswith("processors."):  # installed as llmtrace_processors
            module = "llmtrace_" + module
        return module


TARGETS: tuple[Target, ...] = (
    Target("processors/cost/_price.py",
           ("tests/processors/test_prices.py", "tests/processors/test_cost.py")),
    Target("processors/cost/prices.py",
           ("tests/processors/test_prices.py", "tests/processors/test_cost.py"),
           equivalent={
               "_ResolutionCache.put: call removed: self._items.move_to_end(key)":
                   "put follows a miss, so the key is new and already the most recent",
           }),
    Target("processors/cost/processor.py", ("tests/processors/test_cost.py",),
           equivalent={
               "CostProcessor.price: call removed: seen.add(model)":
                   "only skips looking up the same model name twice; the answer is the same",
           }),
    Target("llmtrace_otel/tenancy/limiter.py", ("tests/tenancy/test_limiter.py",),
           equivalent={
               "RateLimiter.reservation: '<=' -> '<'":
                   "with no tokens limit the reservation is min(max_tokens, 0) = 0 anyway",
               "RateLimiter.token_bucket: 0.0 -> 1.0":
                   "adjust reads a bucket's key, capacity and rate, never its cost",
               "RateLimiter.binding: True -> False":
                   "zip(strict=...): the backend returns one state per bucket",
               "RateLimiter.binding: '>' -> '>='":
                   "when nothing refuses, the longest of all-zero waits is the first bucket",
           }),
    Target("llmtrace_otel/tenancy/budgets.py", ("tests/tenancy/test_budgets.py",),
           equivalent={
               "<module>: 3600.0 -> 3601.0":
                   "how long a spend key outlives its window; only current windows are read",
               "BudgetTracker._bounds: '<=' -> '<'":
                   "a cache miss recomputes the same window bounds",
               "BudgetTracker._bounds: 0 -> 1":
                   "a cache miss recomputes the same window bounds",
               "BudgetTracker.windows: False -> True":
                   "extra agent windows written without a limit are never read",
               "BudgetTracker.observe: True -> False":
                   "zip(strict=...): one total per key, always",
               "BudgetTracker.observe: '>' -> '>='":
                   "when to prune ended windows; observed() leaves them out anyway",
               "BudgetTracker.observe: 4 -> 5":
                   "when to prune ended windows; observed() leaves them out anyway",
               "BudgetTracker.observe: '*' -> '/'":
                   "when to prune ended windows; observed() leaves them out anyway",
               "BudgetTracker.observe: '>' -> '>=' #2":
                   "a window ending exactly now is left out by observed() either way",
               "BudgetTracker.record: True -> False #2":
                   "zip(strict=...): one total per key, always",
               "BudgetTracker.refusal: True -> False":
                   "zip(strict=...): one total per key, always",
               "BudgetTracker.submit: '+=' -> '-=' #2":
                   "not reachable from a test: the loop closing between two lines (a race)",
               "BudgetTracker.submit: 1 -> 2 #2":
                   "not reachable from a test: the loop closing between two lines (a race)",
               "BudgetTracker.drain: 5.0 -> 6.0":
                   "how long shutdown waits for a stuck write: any few seconds serve",
           }),
    Target("processors/security/pii_rules.py", ("tests/processors/security/test_pii.py",),
           equivalent={
               "luhn_ok: '>' -> '>='":
                   "a doubled digit is even, never 9, so > 9 and >= 9 agree",
               "luhn_ok: '+=' -> '-='":
                   "-total is a multiple of 10 exactly when total is",
               "phone_structure_score: all() -> any()":
                   "the next condition needs every group to be a four-digit year anyway",
           }),
    Target("processors/security/redaction.py",
           ("tests/processors/security/test_redaction.py",),
           equivalent={
               "TextRedaction.position: break -> continue":
                   "the spans are in order: every later one starts after `old` too",
               "_redact_tool: 1 -> 2":
                   "`split` is only read when there is a description",
               "_redact_tool: '-' removed":
                   "`split` is only read when there is a description",
           }),
    Target("llmtrace_otel/proxy/security_guard.py",
           ("tests/proxy/test_security_decisions.py",),
           equivalent={
               "_pieces: '<=' -> '<'":
                   "a text of exactly one piece's length is that one piece either way",
               "SecurityGuard.__init__: 50000 -> 50001":
                   "the head and tail kept are limit // 2 each: the same for both",
               "SecurityGuard.__init__: 5.0 -> 6.0":
                   "the wiring always passes security.guard_budget_ms (default tested there)",
               "SecurityGuard.__init__: 1 -> 2":
                   "split's maxsplit does not change the first element",
               "SecurityGuard.scan: 1000 -> 1001":
                   "a budget 0.1 % shorter: only a timed test could tell (none, by rule)",
               "SecurityGuard.scan: '>=' -> '>'":
                   "the clock landing exactly on the deadline: only a timed test could tell",
               "SecurityGuard.scan: 1000 -> 1001 #2":
                   "a duration reported 0.1 % short: below scheduling noise",
               "SecurityGuard.scan: 1000 -> 1001 #3":
                   "a duration reported 0.1 % short: below scheduling noise",
           }),
)
