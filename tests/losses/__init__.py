"""Reference tests for `decouple.losses` (naive loops, closed forms, PML equality, precision)."""
