"""The verdicts, the kinds of claim and the claim families (the decision rules themselves
are ``judge.rules``)."""

REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
CONTRADICTED, INCONCLUSIVE, UNTESTED = "contradicted", "inconclusive", "untested"
#: Every verdict, in the order the report explains them.
VERDICTS = (REPRODUCED, NOT_REPRODUCED, CONTRADICTED, INCONCLUSIVE, UNTESTED)
#: The kinds of claim: a number the paper reports, A beats B, each of A beats each of B.
KINDS = ("value", "greater", "top")
#: The families within which Holm's correction runs, in the report's order.
FAMILIES = ("values", "adjustments", "ingredients", "ranking", "speed", "curves")
#: Why a claim is left inconclusive (the claims table's ``open_because``): only the seed spread
#: is what more seeds can settle (``judge.sequential`` grows no other).
SPREAD, SCALE, DIVERGENCE = "seed spread", "scale", "divergence"
CENSORING, MISSING = "censoring", "missing runs"
CAUSES = (SPREAD, SCALE, DIVERGENCE, CENSORING, MISSING)
