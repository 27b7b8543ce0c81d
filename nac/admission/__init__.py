"""The decision core: a request in, a reply and a history record out.  Pure: no I/O, no clock."""
