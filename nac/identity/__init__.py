"""Where 802.1X users come from besides nac's own users table: an LDAP directory."""
