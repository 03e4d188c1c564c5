"""Aggregating many runs into evidence: ``pbrl report`` (rliable IQM / mean with bootstrap CIs, curves, P(X > Y))."""
