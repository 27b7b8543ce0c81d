"""Answers for people: history searches, `nac why`, statistics, inventory, the web page."""
