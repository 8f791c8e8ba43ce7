"""The archive to attach to a manuscript (RO-Crate), and results of earlier configurations."""
