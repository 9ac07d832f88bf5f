"""The coordinator's Flower ServerApp: read the run config, run the study's rounds, hand over the model.

Run config (``[tool.flwr.app.config]`` in pyproject.toml, overridable with ``flwr run . -c``): ``study``
(a study.toml; empty for the built-in synthetic study) and ``out-dir`` (absolute: the coordinator's
checkpoints go to ``OUT/coordinator/``, the global model and its card to ``OUT/model/``). Everything else is
in ``server/rounds.py``. This module and ``client/app.py`` are the composition roots that may import
``polyclinic.study``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from modalities.settings import ConfigError
from polyclinic.study import Study, load_study
from server.model_card import write_model
from server.rounds import RoundSummary, run_study
from server.secure_aggregation import run_secure_study


def _absolute(config: Mapping[str, object], key: str) -> Path:
    value = str(config.get(key, ""))
    if not value or not Path(value).is_absolute():
        raise ConfigError(f"run config {key!r} must be an absolute path (got {value!r}); pass it with "
                          f"`flwr run . -c \"{key}='/abs/path'\"`")
    return Path(value)


def create_server_app(study: Study | None = None, defaults: Mapping[str, str] | None = None,
                      on_round: Callable[[RoundSummary], None] | None = None) -> ServerApp:
    """A ServerApp; the demo passes its study, output folder and a progress callback directly."""
    fallback = dict(defaults or {})
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        config = {**fallback, **context.run_config}
        chosen = study or load_study(_absolute(config, "study") if config.get("study") else None)
        out = _absolute(config, "out-dir")
        if chosen.federation.secure_aggregation:
            checkpoint = run_secure_study(grid, context, chosen, out / "coordinator", on_round=on_round)
        else:
            checkpoint = run_study(grid, chosen, out / "coordinator", on_round=on_round)
        write_model(out / "model", chosen, checkpoint)

    return server_app


app = create_server_app()
