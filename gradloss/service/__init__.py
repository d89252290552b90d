r"""The service: runs go from the dashboard or CLI (client) through a queue to a worker (consumer),
which trains each in its own process (runner) and records everything in the run store (store).

    client ──> queue ──> tasks ──> runner (child process) ──> reporter ──┐
        \         ^                  ^                                    v
         \     consumer (fleet: one per GPU)    artifacts <────────── store
          `─────────────────────────────────────────────────────────> store

settings names where the store and queue are (GRADLOSS_STORE_URL, GRADLOSS_QUEUE_URL; SQLite
files by default, PostgreSQL and Redis to share them between machines); urls checks those URLs
and masks their passwords wherever text is shown; schema and database define and open the
store; heartbeat holds the liveness rules.
"""
