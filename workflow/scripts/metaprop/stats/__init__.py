"""The statistical engines: per-trial intervals, inverse variance, the GLMM, the Bayesian model."""
