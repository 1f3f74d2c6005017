"""The market engine (`engine`) and the experiment layer as sub-packages: the scenario schema
(`scenario`), running and run folders (`running`), empirical games (`games`), reports
(`reports`), the command line (`cli`) and the registry every plug-in goes through (`registry`).
Nothing here names an auction family: families live in `genmarket.mechanisms`."""
