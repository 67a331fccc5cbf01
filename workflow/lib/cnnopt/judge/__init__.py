"""Judge each of the paper's claims on the study's runs (rule aggregate).

One idea a module, imported one by one (this file imports nothing, so a module that needs
only the decision rules, ``rules``, does not pull in the claims or the statistics):

* ``rules``: the verdicts, the families and the defaults of the config's ``verdicts`` block;
* ``claims``: the paper's claims (its data file) and the runs each one reads;
* ``metrics``: what a claim measures per run (accuracy of the model its role calls for,
  time to target censored at the budget, the curve facts);
* ``model``: the statistical model of the runs (statsmodels OLS, arm + seed, variance
  pooled within declared strata) and its contrasts and prediction intervals;
* ``decide``: the elementary tests, Holm's correction per family and the verdicts;
* ``power``: the smallest detectable difference and the seeds that would decide a claim;
* ``calibration``: the decision rules' error rates, simulated.
"""
