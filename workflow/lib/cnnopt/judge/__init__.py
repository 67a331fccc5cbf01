"""Judge each of the paper's claims on the study's runs (rule aggregate).

One idea a module, imported one by one (this file imports nothing, so a module that needs
only the verdict names does not pull in the claims or the statistics):

* ``verdicts``: the verdicts, the kinds of claim and the families;
* ``rules``: the decision rules, one typed object built once from the config's ``verdicts``
  block (the schema's defaults filled in);
* ``claims``: the paper's claims (its data file) and the runs each one reads;
* ``metrics``: what a claim measures per run (accuracy of the model its role calls for,
  time to target censored at the budget, the curve facts of the histories);
* ``model``: each arm's and each comparison's variance, moderated toward its neighbours
  (limma's empirical Bayes), and the paired, Welch and one-run tests on it;
* ``decide``: the elementary tests, Holm's correction per family and the verdicts;
* ``power``: the smallest detectable difference, the power to reproduce a value, and the
  seeds that would decide a claim;
* ``calibration``: the decision rules' error rates and power, simulated, in the cases that
  break a pooled model's assumptions too.
"""
