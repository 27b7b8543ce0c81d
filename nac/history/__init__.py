"""History: every decision nac made, for the helpdesk, auditors and `nac rules simulate`.

This package is its one owner:

* record.py  the row one decision produces (HistoryRecord, built by keyword)
* format.py  the versioned on-disk format of the recent tier's batches
* tiers.py   the two tiers on disk and the SQL that keeps them
* writer.py  the server's group commit and the upkeep around it (HistoryWriter)
* indexer.py the threads that index the recent tier and copy its WAL
* reader.py  queries that see every committed decision
* prune.py   retention
"""
