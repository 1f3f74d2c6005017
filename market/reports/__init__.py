"""`genmarket report` and the run figures: the report document (`document`), its sentences and
tables (`text`), seaborn figures (`figures`, `run_figures`) and the report of each kind of
folder (`report`)."""
