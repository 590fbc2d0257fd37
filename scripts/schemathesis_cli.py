"""Runs the schemathesis command line (`st`) with one guard, for scripts/fuzz-api.sh.

CPython 3.11's AST constructor can fail with `SystemError: AST constructor recursion depth
mismatch` (python/cpython#106905). Hypothesis parses source code to describe the lambdas of
its strategies, so that bug once ended a fuzzing run with a "Runtime Error" in Hypothesis
itself, not in EventFlow. A description is cosmetic: when parsing fails, the lambda is
described as unknown, which is what Hypothesis does for lambdas whose source it cannot read.
"""

import sys

from hypothesis.internal import lambda_sources

_describe = lambda_sources._lambda_description


def _describe_or_unknown(f, *args, **kwargs):
    try:
        return _describe(f, *args, **kwargs)
    except (SystemError, RecursionError):
        return "lambda: <unknown>"


lambda_sources._lambda_description = _describe_or_unknown

from schemathesis.cli import schemathesis  # noqa: E402  (after the guard is in place)

if __name__ == "__main__":
    sys.exit(schemathesis())
