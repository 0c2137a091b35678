"""What one check found: one line for the operator."""

from __future__ import annotations

from dataclasses import dataclass

OK, FAILED, SKIPPED = "ok", "FAIL", "skip"


@dataclass(frozen=True)
class CheckResult:
    """`status` OK, FAILED or SKIPPED (not checked: what it needs failed); `detail` what was found or
    what failed; `fix` what to do about a failure."""

    name: str
    status: str
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK

    def line(self) -> str:
        """``ok    name: detail``, or ``FAIL  name: detail -> fix``."""
        text = f"{self.status:<5} {self.name}: {self.detail}"
        return f"{text} -> {self.fix}" if self.fix and self.status == FAILED else text


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, OK, detail)


def failed(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, FAILED, detail, fix)


def skipped(name: str, why: str) -> CheckResult:
    return CheckResult(name, SKIPPED, f"not checked: {why}")
