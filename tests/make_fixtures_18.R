# make_fixtures_18.R -- metafor references for issue 18: common-effect fits, influence diagnostics with Baujat
# coordinates, and the Wald test of a pooled rate against a benchmark.
#
# Run from the repository root:   Rscript tests/make_fixtures_18.R
# Needs R with metafor (3.8-1 was used) and lme4.
#
# Datasets: every tests/fixtures/datasets/*.tsv, tests/fixtures/reviewer/small_study.tsv (k = 12 and 10) and
# tests/fixtures/issue18/pritz1997.tsv (metafor's dat.pritz1997, k = 14, written here), columns study, modality,
# events, n. Writes to tests/fixtures/:
#   metafor_common_effect.tsv         rma(method="EE") for logit-ee, ft-ee; rma.glmm(method="EE") for glmm-ee
#   metafor_common_effect_tests.tsv   between (Q across subgroup estimates) and metareg (mods = ~ modality, EE)
#   metafor_common_effect_loo.tsv     leave1out() of logit-ee and ft-ee, glmm-ee refitted without each study
#   metafor_influence.tsv             influence() and baujat() of logit-dl/reml/pm (and -hksj) per subgroup, k >= 2
#   metafor_benchmark.tsv             the Wald test of each pooled fit against a benchmark rate (rma on shifted yi)
# Numbers with 15 significant digits; NA written as empty.

suppressPackageStartupMessages({library(metafor); library(metadat)})

out_dir <- file.path("tests", "fixtures")
ctl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
glm_ctl <- list(glmCtrl = list(epsilon = 1e-14, maxit = 1000))
version_line <- sprintf("# metafor %s, lme4 %s, R %s", packageVersion("metafor"), packageVersion("lme4"), getRversion())

fmt <- function(x) {
  if (is.null(x) || length(x) == 0 || is.na(x[1])) return("")
  x <- x[1]
  if (is.logical(x)) return(if (x) "True" else "False")
  if (is.character(x)) return(gsub("[\t\r\n]+", " ", x))
  sprintf("%.15g", as.numeric(x))
}
write_table <- function(rows, cols, path) {
  lines <- vapply(rows, function(r) paste(vapply(cols, function(cl) fmt(r[[cl]]), ""), collapse = "\t"), "")
  writeLines(c(version_line, paste(cols, collapse = "\t"), lines), path, useBytes = TRUE)
  cat(sprintf("wrote %s (%d rows)\n", path, length(rows)))
}

# metafor's dat.pritz1997: 14 proportions, one subgroup
pritz <- data.frame(study = paste0("P", formatC(dat.pritz1997$study, width = 2, flag = "0")), modality = "A",
                    events = dat.pritz1997$xi, n = dat.pritz1997$ni)
write.table(pritz, file.path(out_dir, "issue18", "pritz1997.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)

read_set <- function(f) {
  d <- read.delim(f, sep = "\t", header = TRUE, stringsAsFactors = FALSE, check.names = FALSE, quote = "",
                  comment.char = "")[, c("study", "modality", "events", "n")]
  d$modality <- factor(d$modality, levels = unique(d$modality))
  d
}
files <- c(sort(list.files(file.path("tests", "fixtures", "datasets"), pattern = "\\.tsv$", full.names = TRUE),
                method = "radix"),
           file.path("tests", "fixtures", "reviewer", "small_study.tsv"), file.path(out_dir, "issue18", "pritz1997.tsv"))
dname_of <- function(f) sub("\\.tsv$", "", basename(f))

ee_methods <- c("logit-ee", "ft-ee", "glmm-ee")
re_methods <- c("logit-dl", "logit-reml", "logit-pm", "logit-dl-hksj", "logit-reml-hksj", "logit-pm-hksj")
tau_method <- function(tok) toupper(sub("-hksj$", "", sub("^logit-", "", tok)))

fit_ee <- function(d, tok, mods = NULL) {
  if (tok == "glmm-ee") {
    if (is.null(mods)) return(rma.glmm(measure = "PLO", xi = events, ni = n, data = d, method = "EE", control = glm_ctl))
    return(rma.glmm(measure = "PLO", xi = events, ni = n, data = d, mods = mods, method = "EE", control = glm_ctl))
  }
  es <- escalc(measure = if (tok == "ft-ee") "PFT" else "PLO", xi = events, ni = n, data = d)
  if (is.null(mods)) return(rma(yi, vi, data = es, method = "EE"))
  rma(yi, vi, mods = mods, data = es, method = "EE")
}
fit_re <- function(d, tok) {
  es <- escalc(measure = "PLO", xi = events, ni = n, data = d)
  rma(yi, vi, data = es, method = tau_method(tok), test = if (endsWith(tok, "-hksj")) "knha" else "z", control = ctl,
      slab = study)
}
back <- function(x, d, tok) if (tok == "ft-ee") transf.ipft.hm(x, targs = list(ni = d$n)) else transf.ilogit(x)

pooled <- list(); tests <- list(); loo <- list(); infl <- list(); bench <- list()
for (f in files) {
  dn <- dname_of(f); d <- read_set(f); lv <- levels(d$modality)
  for (tok in ee_methods) {
    ests <- ses <- rep(NA_real_, length(lv))
    for (s in c(lv, "overall")) {
      sd <- if (s == "overall") d else droplevels(d[d$modality == s, ])
      row <- list(dataset = dn, subgroup = s, method = tok, k = nrow(sd))
      res <- tryCatch(suppressWarnings(fit_ee(sd, tok)), error = function(e) e)
      if (inherits(res, "error")) { row$error <- conditionMessage(res); pooled[[length(pooled) + 1]] <- row; next }
      b <- as.numeric(res$b[1]); se <- as.numeric(res$se[1])
      row$est_model <- b; row$se_model <- se
      bt <- back(c(b, res$ci.lb, res$ci.ub), sd, tok)
      row$estimate <- bt[1]; row$ci_low <- bt[2]; row$ci_high <- bt[3]
      p <- predict(res)
      if (!is.null(p$pi.lb)) { row$pi_low_predict <- back(p$pi.lb, sd, tok); row$pi_high_predict <- back(p$pi.ub, sd, tok) }
      else { row$pi_low_predict <- back(p$ci.lb, sd, tok); row$pi_high_predict <- back(p$ci.ub, sd, tok) }
      row$tau2 <- res$tau2; row$i2 <- res$I2 / 100; row$h2 <- res$H2; row$q_df <- res$k - 1
      if (tok == "glmm-ee") { row$q <- res$QE.LRT; row$q_p <- res$QEp.LRT; row$loglik <- as.numeric(logLik(res)) }
      else { row$q <- res$QE; row$q_p <- res$QEp }
      if (s != "overall") { i <- match(s, lv); ests[i] <- b; ses[i] <- se }
      pooled[[length(pooled) + 1]] <- row
      # benchmark: the pooled fit against a rate of 0.3 (the model scale's null: qlogis, or asin(sqrt()) for FT)
      null <- if (tok == "ft-ee") asin(sqrt(0.3)) else qlogis(0.3)
      bench[[length(bench) + 1]] <- list(dataset = dn, subgroup = s, method = tok, rate = 0.3,
                                         statistic = (b - null) / se, p = 2 * pnorm(-abs((b - null) / se)))
    }
    if (length(lv) >= 2) {
      row <- list(dataset = dn, method = tok, test = "between")
      if (!any(is.na(ests))) {
        r <- rma(yi = ests, sei = ses, method = "EE")
        row$statistic <- r$QE; row$df <- r$k - 1; row$p <- r$QEp
      } else row$error <- "a subgroup without an estimate"
      tests[[length(tests) + 1]] <- row
      row <- list(dataset = dn, method = tok, test = "metareg")
      r <- tryCatch(suppressWarnings(fit_ee(d, tok, mods = ~ modality)), error = function(e) e)
      if (inherits(r, "error")) row$error <- conditionMessage(r) else {
        row$statistic <- r$QM; row$df <- r$QMdf[1]; row$p <- r$QMp
        if (length(lv) == 2 && tok != "ft-ee") {
          row$lor <- r$b[2]; row$lor_se <- r$se[2]; row$lor_ci_low <- r$ci.lb[2]; row$lor_ci_high <- r$ci.ub[2]
        }
      }
      tests[[length(tests) + 1]] <- row
    }
    for (s in c(lv, "overall")) {
      sd <- if (s == "overall") d else droplevels(d[d$modality == s, ])
      if (nrow(sd) < 2) next
      for (j in seq_len(nrow(sd))) {
        row <- list(dataset = dn, subgroup = s, method = tok, omitted = sd$study[j], k = nrow(sd) - 1)
        dl <- sd[-j, ]
        r <- tryCatch(suppressWarnings(fit_ee(dl, tok)), error = function(e) e)
        if (inherits(r, "error")) { row$error <- conditionMessage(r); loo[[length(loo) + 1]] <- row; next }
        row$est_model <- r$b[1]; row$se_model <- r$se[1]; row$tau2 <- r$tau2
        row$q <- if (tok == "glmm-ee") r$QE.LRT else r$QE
        row$i2 <- if (nrow(dl) > 1) r$I2 / 100 else NA
        loo[[length(loo) + 1]] <- row
      }
    }
  }
  for (tok in c(re_methods, "glmm")) {
    for (s in c(lv, "overall")) {
      sd <- if (s == "overall") d else droplevels(d[d$modality == s, ])
      if (tok == "glmm") {
        r <- tryCatch(suppressWarnings(rma.glmm(measure = "PLO", xi = events, ni = n, data = sd, method = "ML")),
                      error = function(e) e)
        if (inherits(r, "error")) next
        null <- qlogis(0.3)
        bench[[length(bench) + 1]] <- list(dataset = dn, subgroup = s, method = tok, rate = 0.3,
                                           statistic = (r$b[1] - null) / r$se, p = 2 * pnorm(-abs((r$b[1] - null) / r$se)))
        next
      }
      r <- tryCatch(suppressWarnings(fit_re(sd, tok)), error = function(e) e)
      if (inherits(r, "error")) next
      # the benchmark test as metafor gives it: the same model on yi - logit(rate); z, or t(k - 1) with knha
      es <- escalc(measure = "PLO", xi = events, ni = n, data = sd)
      shifted <- tryCatch(suppressWarnings(rma(yi - qlogis(0.3), vi, data = es, method = tau_method(tok),
                                               test = if (endsWith(tok, "-hksj") && nrow(sd) > 1) "knha" else "z",
                                               control = ctl)), error = function(e) e)
      if (!inherits(shifted, "error"))
        bench[[length(bench) + 1]] <- list(dataset = dn, subgroup = s, method = tok, rate = 0.3,
                                           statistic = shifted$zval, p = shifted$pval)
      if (s == "overall" || nrow(sd) < 2) next
      inf <- tryCatch(suppressWarnings(influence(r)), error = function(e) e)
      bj <- tryCatch(suppressWarnings(baujat(r)), error = function(e) e)
      if (inherits(inf, "error") || inherits(bj, "error")) next
      for (j in seq_len(nrow(sd))) {
        infl[[length(infl) + 1]] <- list(
          dataset = dn, subgroup = s, method = tok, study = sd$study[j], rstudent = inf$inf$rstudent[j],
          dffits = inf$inf$dffits[j], cook_d = inf$inf$cook.d[j], cov_r = inf$inf$cov.r[j],
          tau2_del = inf$inf$tau2.del[j], qe_del = inf$inf$QE.del[j], hat = inf$inf$hat[j],
          weight = inf$inf$weight[j] / 100, inf = inf$inf$inf[j] == "*", baujat_x = bj$x[j], baujat_y = bj$y[j])
      }
    }
  }
}
write_table(pooled, c("dataset", "subgroup", "method", "k", "est_model", "se_model", "estimate", "ci_low", "ci_high",
                      "pi_low_predict", "pi_high_predict", "tau2", "i2", "h2", "q", "q_df", "q_p", "loglik", "error"),
            file.path(out_dir, "metafor_common_effect.tsv"))
write_table(tests, c("dataset", "method", "test", "statistic", "df", "p", "lor", "lor_se", "lor_ci_low", "lor_ci_high",
                     "error"), file.path(out_dir, "metafor_common_effect_tests.tsv"))
write_table(loo, c("dataset", "subgroup", "method", "omitted", "k", "est_model", "se_model", "tau2", "q", "i2", "error"),
            file.path(out_dir, "metafor_common_effect_loo.tsv"))
write_table(infl, c("dataset", "subgroup", "method", "study", "rstudent", "dffits", "cook_d", "cov_r", "tau2_del",
                    "qe_del", "hat", "weight", "inf", "baujat_x", "baujat_y"), file.path(out_dir, "metafor_influence.tsv"))
write_table(bench, c("dataset", "subgroup", "method", "rate", "statistic", "p"), file.path(out_dir, "metafor_benchmark.tsv"))
