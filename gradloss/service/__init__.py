r"""The service: runs go from the dashboard or CLI (client) through a queue to a worker (consumer),
which trains each in its own process (runner) and records everything in the run store (store).

    client ──> queue ──> tasks ──> runner (child process)
        \         ^                  |
         \     consumer              v
          `──────────────────────> store   (heartbeat: liveness rules shared by all)
"""
