"""Sessions from accounting (the sessions table and the jobs queued against them), and which
sessions a rule change re-authorizes or disconnects."""
