"""The Solara app of `genmarket view` (solara imports it by name; `genmarket.market.view.serve`
starts it): Mesa's SolaraViz over the scenario's `LiveMarket`, one plot per panel of its family,
the first under a line saying which market is shown."""

from __future__ import annotations

import solara
from mesa.visualization import SolaraViz

from genmarket.market.view import (
    LiveMarket,
    PanelPlot,
    about,
    initial,
    model_params,
    panel_plots,
    settings_from_env,
)


def _plot(plot: PanelPlot, first: bool):
    """A SolaraViz component (a function of the model, redrawn after each step) of one panel."""

    def Plot(model: LiveMarket):
        if plot.is_entry and model.fixed_entry:  # another variant's entry moves, not this one's
            return solara.Markdown(f"**{plot.panel.title}**: fixed in this variant (every "
                                   f"advertiser always or never enters).")
        figure = solara.FigureMatplotlib(plot.figure(model), format="png")
        if not first:
            return figure
        return solara.Column([solara.Markdown(about(model)), figure], gap="0px")

    Plot.__name__ = f"Plot_{plot.panel.name}"
    return Plot


@solara.component
def Page():
    scenario, device = solara.use_memo(settings_from_env, [])
    params = solara.use_memo(lambda: model_params(scenario, device), [])
    model = solara.use_memo(lambda: LiveMarket(**initial(params)), [])
    components = solara.use_memo(
        lambda: [(_plot(p, k == 0), 0) for k, p in enumerate(panel_plots(scenario))], [])
    SolaraViz(model, components=components, model_params=params,
              name=f"genmarket view: {scenario.name}")
