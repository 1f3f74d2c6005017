"""Running scenarios: the runner with checkpoints, resume and variants (`runner`), run folders
(`folder`), summaries (`summary`), what a run returns (`result`) and the Python API (`api`)."""
