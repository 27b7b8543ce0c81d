"""Rules and what they decide: precedence, policy files, conflicts, the audit chain, simulation."""
