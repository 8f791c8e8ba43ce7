# make_exact_glmm.R -- an independent, tightly converged GLMM reference for the Python engine's tests.
#
# Run from the repository root:   Rscript tests/make_exact_glmm.R
# Needs R with lme4 and numDeriv: apt-get install -y r-cran-lme4 r-cran-numderiv
#
# lme4 stops its optimiser near 1e-5 and takes standard errors from a finite-difference Hessian, so it is a
# reference to about 1e-4 only. This script fits the same model (metafor's rma.glmm(measure = "PLO"): binomial,
# random intercept, 7-point adaptive Gauss-Hermite quadrature) with its own likelihood: conditional modes by
# uniroot inside their bracket, Gauss-Hermite nodes by Golub-Welsch, maximisation by Nelder-Mead from several
# starts (lme4's fit and a grid over tau) polished by Newton steps with numDeriv's Richardson-extrapolated
# gradient and Hessian; standard errors from that Hessian. lme4's own fit is written beside it.
#
# Reads tests/fixtures/datasets/*.tsv (study, modality, events, n) and writes tests/fixtures/exact_glmm.tsv: one
# row per (dataset, fit, coefficient) for every subgroup, overall, every leave-one-out set of those (k >= 3
# left) and the meta-regression on modality, where a finite maximum exists.

suppressPackageStartupMessages({ library(lme4); library(numDeriv) })

in_dir <- file.path("tests", "fixtures", "datasets")
out_path <- file.path("tests", "fixtures", "exact_glmm.tsv")
nagq <- 7

# Gauss-Hermite nodes and weights for exp(-x^2) by Golub-Welsch.
gauss_hermite <- function(m) {
  i <- seq_len(m - 1)
  J <- matrix(0, m, m)
  J[cbind(i, i + 1)] <- sqrt(i / 2)
  J[cbind(i + 1, i)] <- sqrt(i / 2)
  e <- eigen(J, symmetric = TRUE)
  list(x = e$values, w = sqrt(pi) * e$vectors[1, ]^2)
}
gh <- gauss_hermite(nagq)

# One study's log marginal likelihood (binomial coefficient included) at linear predictor eta and sd tau.
study_ll <- function(eta, tau, y, n) {
  if (tau == 0) return(dbinom(y, n, plogis(eta), log = TRUE))
  score <- function(b) tau * (y * plogis(-(eta + tau * b)) - (n - y) * plogis(eta + tau * b)) - b
  b <- uniroot(score, c(tau * (y - n) - 1, tau * y + 1), tol = 1e-14, maxiter = 10000)$root
  p <- plogis(eta + tau * b)
  s <- sqrt(2 / (tau^2 * n * p * (1 - p) + 1))
  at <- b + s * gh$x
  v <- dbinom(y, n, plogis(eta + tau * at), log = TRUE) + dnorm(at, log = TRUE) + gh$x^2
  m <- max(v)
  m + log(sum(gh$w * exp(v - m))) + log(s)
}

# Conditional modes and metafor's logLik(): the binomial log-likelihood at the modes.
conditional_ll <- function(beta, tau, X, y, n) {
  eta <- drop(X %*% beta)
  b <- if (tau == 0) rep(0, length(y)) else vapply(seq_along(y), function(i) {
    score <- function(b) tau * (y[i] * plogis(-(eta[i] + tau * b)) - (n[i] - y[i]) * plogis(eta[i] + tau * b)) - b
    uniroot(score, c(tau * (y[i] - n[i]) - 1, tau * y[i] + 1), tol = 1e-14, maxiter = 10000)$root
  }, 0)
  sum(dbinom(y, n, plogis(eta + tau * b), log = TRUE))
}

loglik <- function(par, X, y, n) {
  p <- ncol(X)
  eta <- drop(X %*% par[1:p])
  sum(vapply(seq_along(y), function(i) study_ll(eta[i], abs(par[p + 1]), y[i], n[i]), 0))
}

# Newton steps with numDeriv's derivatives, each kept only if the likelihood rises.
polish <- function(f, par) {
  for (it in 1:30) {
    g <- grad(f, par)
    H <- hessian(f, par)
    step <- tryCatch(solve(H, g), error = function(e) NULL)
    if (is.null(step) || any(!is.finite(step))) break
    cand <- par - step
    if (f(cand) < f(par) - 1e-13) break
    par <- cand
    if (max(abs(step)) < 1e-11) break
  }
  par
}

# The maximum over several starts; tau = 0 compared as its own (boundary) fit.
exact_fit <- function(X, y, n, start) {
  p <- ncol(X)
  f <- function(par) loglik(par, X, y, n)
  starts <- c(list(start), lapply(c(0.1, 0.5, 1, 2, 4), function(t) c(start[1:p], t)))
  best <- NULL
  for (s in starts) {
    o <- optim(s, function(par) -f(par), method = "Nelder-Mead",
               control = list(reltol = 1e-15, maxit = 20000))
    par <- polish(f, o$par)
    if (is.null(best) || f(par) > f(best)) best <- par
  }
  best[p + 1] <- abs(best[p + 1])
  f0 <- function(beta) loglik(c(beta, 0), X, y, n)
  o0 <- optim(best[1:p], function(b) -f0(b), method = if (p == 1) "BFGS" else "Nelder-Mead",
              control = list(reltol = 1e-15, maxit = 20000))
  beta0 <- polish(f0, o0$par)
  if (f0(beta0) >= f(best) - 1e-12) {
    cov <- solve(-hessian(f0, beta0))
    return(list(beta = beta0, tau = 0, cov = cov, ll = f0(beta0), boundary = TRUE))
  }
  cov <- solve(-hessian(f, best))[1:p, 1:p, drop = FALSE]
  list(beta = best[1:p], tau = best[p + 1], cov = cov, ll = f(best), boundary = FALSE)
}

fmt <- function(x) if (is.null(x) || length(x) == 0 || is.na(x)) "" else
  if (is.character(x)) x else sprintf("%.15g", x)

rows <- list()
add_fit <- function(dname, fit_name, omitted, X, d) {
  y <- d$events; n <- d$n
  ids <- factor(seq_along(y))
  m <- suppressWarnings(suppressMessages(tryCatch(
    glmer(cbind(y, n - y) ~ X - 1 + (1 | ids), family = binomial, nAGQ = nagq), error = function(e) NULL)))
  if (is.null(m)) return(invisible())
  start <- c(unname(fixef(m)), unname(getME(m, "theta")))
  fit <- exact_fit(X, y, n, start)
  if (fit$tau > 10) return(invisible())  # no finite maximum within reach: not a reference
  sat <- sum(dbinom(y, n, y / n, log = TRUE))
  lme4_se <- sqrt(diag(as.matrix(vcov(m))))
  for (j in seq_len(ncol(X))) {
    rows[[length(rows) + 1]] <<- c(
      dataset = dname, fit = fit_name, omitted = omitted, k = length(y), coef = j - 1,
      estimate = fmt(fit$beta[j]), se = fmt(sqrt(fit$cov[j, j])), tau2 = fmt(fit$tau^2),
      boundary = if (fit$boundary) "TRUE" else "FALSE", loglik = fmt(fit$ll),
      loglik_conditional = fmt(conditional_ll(fit$beta, fit$tau, X, y, n)),
      lme4_estimate = fmt(unname(fixef(m))[j]), lme4_se = fmt(lme4_se[j]),
      lme4_tau2 = fmt(unname(getME(m, "theta"))^2), lme4_loglik = fmt(c(logLik(m)) + sat))
  }
}

degenerate <- function(d) all(d$events == 0) || all(d$events == d$n)

files <- sort(list.files(in_dir, pattern = "\\.tsv$", full.names = TRUE), method = "radix")
for (f in files) {
  dname <- sub("\\.tsv$", "", basename(f))
  d <- read.delim(f, sep = "\t", quote = "", comment.char = "", stringsAsFactors = FALSE,
                  colClasses = c("character", "character", "numeric", "numeric"))
  lv <- unique(d$modality)
  for (s in c(lv, "overall")) {
    sd <- if (s == "overall") d else d[d$modality == s, , drop = FALSE]
    if (nrow(sd) < 2 || degenerate(sd) || (s == "overall" && length(lv) == 1)) next
    one <- matrix(1, nrow(sd), 1)
    add_fit(dname, s, "", one, sd)
    if (nrow(sd) < 4) next
    for (j in seq_len(nrow(sd))) {
      rest <- sd[-j, , drop = FALSE]
      if (!degenerate(rest)) add_fit(dname, s, sd$study[j], matrix(1, nrow(rest), 1), rest)
    }
  }
  groups <- factor(d$modality, levels = lv)
  if (length(lv) >= 2 && nrow(d) > length(lv) &&
      !any(vapply(lv, function(g) degenerate(d[d$modality == g, ]), TRUE))) {
    add_fit(dname, "metareg", "", model.matrix(~ groups), d)
  }
  cat(sprintf("%s done (%d rows)\n", dname, length(rows)))
}

cols <- names(rows[[1]])
lines <- vapply(rows, function(r) paste(r[cols], collapse = "\t"), "")
version_line <- sprintf("# lme4 %s, numDeriv %s, R %s", packageVersion("lme4"), packageVersion("numDeriv"),
                        getRversion())
writeLines(c(version_line, paste(cols, collapse = "\t"), lines), out_path, useBytes = TRUE)
cat(sprintf("wrote %s (%d rows)\n", out_path, length(rows)))
