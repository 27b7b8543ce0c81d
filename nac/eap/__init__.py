"""802.1X: EAP over RADIUS (RFC 3579) with EAP-TLS, PEAPv0/EAP-MSCHAPv2 and EAP-TTLS.

The protocol modules here (eap, limits, method, tls, peap, ttls, mschapv2, md4, keys) do no I/O;
``config`` (certificate files) and ``users`` (the database) are the shell's side.
"""
