"""Who made a MAC: parsing, the IEEE registry (MA-L/MA-M/MA-S), vendor families, imports."""
