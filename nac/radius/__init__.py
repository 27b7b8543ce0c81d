"""The RADIUS wire: the packet codec, authenticators, accounting attributes, and the Dynamic
Authorization (RFC 5176) client."""
