from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "portal.experiments"
    label = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        from portal.experiments import receivers  # noqa: F401  (connects the receivers)
