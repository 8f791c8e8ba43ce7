# reproduce_with_metafor.R -- check the archived results with R's metafor, independently of the pipeline.
#
# From the unpacked archive's top folder (meta-analysis/):
#   Rscript workflow/scripts/reproduce_with_metafor.R
# Needs R with metafor and lme4 (Debian: apt-get install -y r-cran-metafor r-cran-lme4).
#
# Reads the archived results/tables/studies.tsv (the counts every analysis starts from), recomputes per outcome
# and modality (and all trials together) the pooled rate by logit-REML (rma, measure = "PLO") and by the GLMM
# (rma.glmm, measure = "PLO", maximum likelihood), and the modality tests (Q between the subgroup estimates;
# meta-regression on modality), and prints each beside the number in results/tables/pooled.tsv and
# subgroup_tests.tsv. The last line says whether every number agrees within the tolerance (relative 1e-6 for
# logit-REML; 1e-3 for the GLMM, since lme4 stops its optimiser earlier and takes standard errors by finite
# differences, good to about 1e-4, which a Q built from squared standard errors doubles; plus 1e-5 absolute);
# the exit status is 1 when one does not.

suppressPackageStartupMessages(library(metafor))

tables <- file.path("results", "tables")
read_tsv <- function(name) read.delim(file.path(tables, name), stringsAsFactors = FALSE, na.strings = "",
                                      check.names = FALSE, quote = "", comment.char = "")
studies <- read_tsv("studies.tsv")
pooled <- read_tsv("pooled.tsv")
tests <- read_tsv("subgroup_tests.tsv")
studies <- studies[studies$included %in% c(TRUE, "True"), ]
ctl <- list(threshold = 1e-10, maxiter = 1000)

tolerance <- function(method) if (method == "glmm") 1e-3 else 1e-6
rows <- list()
add <- function(outcome, what, method, quantity, ours, metafor) {
  ours <- as.numeric(ours)
  metafor <- as.numeric(metafor)
  ok <- if (is.na(ours) && is.na(metafor)) TRUE else
    !is.na(ours) && !is.na(metafor) && abs(ours - metafor) <= 1e-5 + tolerance(method) * abs(metafor)
  rows[[length(rows) + 1]] <<- data.frame(outcome = outcome, subgroup_or_test = what, method = method,
                                          quantity = quantity, ours = ours, metafor = metafor, agree = ok)
}

# One subgroup: list(est, se, ci.lb, ci.ub, tau2) on the logit scale; NULL where metafor has no fit.
fit_one <- function(d, method) {
  if (nrow(d) == 1) {  # one trial: its own estimate and Wald interval, no tau^2 (as the pipeline reports it)
    es <- escalc(measure = "PLO", xi = d$events, ni = d$n)
    if (method == "glmm" && (d$events == 0 || d$events == d$n)) return(NULL)
    se <- sqrt(es$vi)
    return(list(est = es$yi, se = se, lb = es$yi - qnorm(0.975) * se, ub = es$yi + qnorm(0.975) * se, tau2 = NA))
  }
  fit <- tryCatch(
    if (method == "glmm") rma.glmm(measure = "PLO", xi = events, ni = n, data = d, method = "ML")
    else rma(measure = "PLO", xi = events, ni = n, data = d, method = "REML", control = ctl),
    error = function(e) NULL)
  if (is.null(fit)) return(NULL)
  list(est = fit$beta[1], se = fit$se, lb = fit$ci.lb, ub = fit$ci.ub, tau2 = fit$tau2)
}

for (outcome in unique(studies$outcome)) {
  kept <- studies[studies$outcome == outcome, ]
  groups <- unique(kept$modality)
  for (method in intersect(c("logit-reml", "glmm"), unique(pooled$method))) {
    fits <- list()
    for (g in c(groups, "overall")) {
      d <- if (g == "overall") kept else kept[kept$modality == g, ]
      ours <- pooled[pooled$outcome == outcome & pooled$subgroup == g & pooled$method == method, ]
      if (nrow(ours) != 1) next
      f <- fit_one(d, method)
      fits[[g]] <- f
      if (is.null(f)) {
        cat(sprintf("%s, %s, %s: metafor has no fit; ours: %s\n", outcome, g, method, ours$note))
        next
      }
      add(outcome, g, method, "estimate", ours$estimate, transf.ilogit(f$est))
      add(outcome, g, method, "ci_low", ours$ci_low, transf.ilogit(f$lb))
      add(outcome, g, method, "ci_high", ours$ci_high, transf.ilogit(f$ub))
      if (nrow(d) > 1) add(outcome, g, method, "tau2", ours$tau2, f$tau2)
    }
    if (length(groups) < 2) next
    mine <- tests[tests$outcome == outcome & tests$method == method, ]
    usable <- Filter(Negate(is.null), fits[groups])
    if (length(usable) == length(groups) && "between" %in% mine$test) {
      between <- rma(yi = sapply(usable, `[[`, "est"), sei = sapply(usable, `[[`, "se"), method = "FE")
      add(outcome, "between", method, "Q", mine$statistic[mine$test == "between"], between$QE)
      add(outcome, "between", method, "p", mine$p[mine$test == "between"], between$QEp)
    }
    if ("metareg" %in% mine$test && nrow(kept) > length(groups)) {
      kept$modality <- factor(kept$modality, levels = groups)
      reg <- tryCatch(
        if (method == "glmm") rma.glmm(measure = "PLO", xi = events, ni = n, mods = ~ modality, data = kept,
                                       method = "ML")
        else rma(measure = "PLO", xi = events, ni = n, mods = ~ modality, data = kept, method = "REML",
                 control = ctl),
        error = function(e) NULL)
      if (!is.null(reg) && !is.na(mine$statistic[mine$test == "metareg"])) {
        add(outcome, "metareg", method, "QM", mine$statistic[mine$test == "metareg"], reg$QM)
        add(outcome, "metareg", method, "p", mine$p[mine$test == "metareg"], reg$QMp)
      }
    }
  }
}

result <- do.call(rbind, rows)
options(width = 200)
print(format(result, digits = 8), row.names = FALSE)
worst <- result[!result$agree, ]
if (nrow(worst) == 0) {
  cat(sprintf("AGREE: all %d numbers match metafor %s within tolerance\n", nrow(result), packageVersion("metafor")))
} else {
  cat(sprintf("DISAGREE: %d of %d numbers differ from metafor %s\n", nrow(worst), nrow(result),
              packageVersion("metafor")))
  quit(status = 1)
}
