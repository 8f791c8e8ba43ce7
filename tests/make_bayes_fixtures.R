# make_bayes_fixtures.R -- an independent reference for the Bayesian binomial-normal model (method `bayes`).
#
# Run from the repository root:   Rscript tests/make_bayes_fixtures.R     (base R only; takes some minutes)
#
# Model: events_i ~ Binomial(n_i, plogis(theta_i)), theta_i ~ N(mu, tau^2), mu ~ N(0, s_mu^2), tau ~ half-normal or
# half-Cauchy. Every integral is R's adaptive integrate() (QUADPACK), nested: over theta_i for each study's
# likelihood, over mu, over tau; posterior CDFs by those cumulative integrals. No quadrature rule, grid or
# code is shared with the Python implementation (Gauss-Legendre panels over log tau and mu there).
#
# Writes tests/fixtures/bayes_reference.tsv: one row per (case, quantity, probability) with R's posterior CDF at x.

cases <- list(
  list(case = "cart_k4_hn0.5", events = c(27, 14, 27, 29), n = c(30, 20, 29, 32), s_mu = 2,
       prior = "half-normal", scale = 0.5),
  list(case = "blin_k1_hn0.5", events = 123, n = 261, s_mu = 2, prior = "half-normal", scale = 0.5),
  list(case = "zero_k3_hn0.5", events = c(0, 0, 0), n = c(15, 22, 30), s_mu = 2, prior = "half-normal", scale = 0.5),
  list(case = "cart_k4_hc1", events = c(27, 14, 27, 29), n = c(30, 20, 29, 32), s_mu = 2,
       prior = "half-cauchy", scale = 1),
  list(case = "all_k2_hn1", events = c(12, 20), n = c(12, 20), s_mu = 2, prior = "half-normal", scale = 1)
)
tol <- 1e-9
ref <- 1  # scale of the unnormalised posterior, set per case: integrals' absolute tolerances are relative to it

prior_density <- function(tau, prior, scale) {
  if (prior == "half-normal") 2 * dnorm(tau, 0, scale) else 2 * dcauchy(tau, 0, scale)
}

# One study's likelihood at (mu, tau): int dbinom(y, n, plogis(mu + tau z)) dnorm(z) dz, split at the binomial
# peak so that integrate() cannot step over it.
study_lik <- function(mu, tau, y, n) {
  f <- function(z) dbinom(y, n, plogis(mu + tau * z)) * dnorm(z)
  # the binomial's peak (or, with 0 or n events, its edge) in z, with points around it
  peak <- (qlogis((y + 0.5) / (n + 1)) - mu) / tau
  pts <- sort(unique(pmin(pmax(c(-12, peak + c(-3, -0.5, 0, 0.5, 3), 12), -12), 12)))
  floor <- 1e-15 * dbinom(y, n, y / n)  # absolute tolerance: far below any likelihood that carries weight
  s <- 0
  for (j in seq_len(length(pts) - 1)) s <- s + integrate(f, pts[j], pts[j + 1], rel.tol = tol, abs.tol = floor)$value
  s
}

# Unnormalised conditional posterior of mu given tau (vectorised over mu).
post_mu <- function(mu, tau, cs) {
  sapply(mu, function(m) {
    l <- dnorm(m, 0, cs$s_mu)
    for (i in seq_along(cs$events)) l <- l * study_lik(m, tau, cs$events[i], cs$n[i])
    l
  })
}

# Breakpoints for integrals over mu: around the pooled logit, where the posterior sits.
mu_breaks <- function(cs) {
  c0 <- qlogis((sum(cs$events) + 0.5) / (sum(cs$n) + 1))
  sort(unique(c(-25, c0 + c(-3, 0, 3), 25)))
}

integrate_mu <- function(g, upper, cs) {
  b <- mu_breaks(cs)
  b <- c(b[b < upper], upper)
  if (upper <= -25) return(0)
  s <- 0
  for (j in seq_len(length(b) - 1)) s <- s + integrate(g, b[j], b[j + 1], rel.tol = tol, abs.tol = 1e-12 * ref)$value
  s
}

# int_0^Inf prior(tau) h(tau) dtau, split so that the bulk is resolved.
integrate_tau <- function(h, cs, upper = Inf) {
  b <- c(0, 0.5, 2, Inf)
  b <- c(b[b < upper], upper)
  s <- 0
  for (j in seq_len(length(b) - 1)) {
    s <- s + integrate(function(t) sapply(t, function(tt) prior_density(tt, cs$prior, cs$scale) * h(tt)),
                       b[j], b[j + 1], rel.tol = tol * 10, abs.tol = 1e-12 * ref)$value
  }
  s
}

# The points: our quantiles (tests/fixtures/bayes_points.tsv, written by tests/test_bayes.py::write_points);
# uniroot() on these nested integrals would take hours, so R evaluates its CDF at our quantile x and the test
# turns the gap into a quantile error, (F_R(x) - p) / density(x).
points <- read.delim(file.path("tests", "fixtures", "bayes_points.tsv"), stringsAsFactors = FALSE)
# Optional arguments: the cases to run and the output file (to run cases in parallel and concatenate).
args <- commandArgs(trailingOnly = TRUE)
only <- if (length(args) >= 1) strsplit(args[1], ",")[[1]] else vapply(cases, function(cs) cs$case, "")
out_path <- if (length(args) >= 2) args[2] else file.path("tests", "fixtures", "bayes_reference.tsv")
cat("case\tquantity\tp\tx\tcdf_r\n", file = out_path)
for (cs in cases) {
  todo <- points[points$case == cs$case & cs$case %in% only, ]
  if (nrow(todo) == 0) next
  t0 <- Sys.time()
  ref <- post_mu(qlogis((sum(cs$events) + 0.5) / (sum(cs$n) + 1)), 0.3, cs)
  Z <- integrate_tau(function(tau) integrate_mu(function(m) post_mu(m, tau, cs), 25, cs), cs)
  cdf <- list(
    mu = function(x) integrate_tau(function(tau) integrate_mu(function(m) post_mu(m, tau, cs), x, cs), cs) / Z,
    tau = function(x) integrate_tau(function(tau) integrate_mu(function(m) post_mu(m, tau, cs), 25, cs), cs,
                                    upper = x) / Z,
    theta_new = function(x) integrate_tau(function(tau) integrate_mu(function(m) post_mu(m, tau, cs) *
                                                                       pnorm((x - m) / tau), 25, cs), cs) / Z
  )
  for (i in seq_len(nrow(todo))) {
    value <- cdf[[todo$quantity[i]]](todo$x[i])
    cat(sprintf("%s\t%s\t%s\t%.12f\t%.12f\n", cs$case, todo$quantity[i], format(todo$p[i]), todo$x[i], value),
        file = out_path, append = TRUE)
  }
  message(cs$case, ": ", format(Sys.time() - t0))
}
