"""`genmarket report` and the run figures: the report document (`document`), the words a
family's specifications give a folder's columns (`specs`), the sentences and tables of runs and
variants (`text`) and of empirical games (`game_text`), seaborn figures (`figures`,
`run_figures`) and the report of each kind of folder (`report`)."""
