"""Figures drawn from results tables: forest, posterior, cumulative, funnel, flow."""
