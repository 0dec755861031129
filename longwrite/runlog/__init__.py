"""The run log: every write run recorded as it streams, so that nothing a run wrote is lost.

`store` is the SQLite file (where it lives, its schema, concurrency, faults); `recorder` is
what a run appends through, in small batches. Both sit at the bottom of the layers (they
import only `io` and `errors`), so the generate stage, the CLI and the API can all use them.
"""
