"""Reading and checking the inputs: config files, trial tables, text cells."""
