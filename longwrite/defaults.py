"""The defaults a user sees in `--help`, in one light module.

The command line must not import the modules that use these numbers just to print them
(`longwrite --help` stays as cheap as importing typer and rich: `bench/startup.py`), so each
number lives here once and both the option and the code read it.
"""

THINK_TOKENS = 3000  # thinking allowance and cap: the paper's typical thinking is 2-3k tokens
GUARD_RETRIES = 2  # fresh samples after a loop before the guard gives up
WORST_SHOWN = 5  # outliers listed by `eval length` and `eval report`
JUDGE_CONTEXT = 32_768  # a judge's context in tokens when its server does not say
GROUNDING_CLAIMS = 40  # sentence-passage pairs `eval grounding --judge` asks about per document
MAX_WORDS = 2_000_000  # the longest target accepted (more would plan millions of sections)
