from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "health"
    verbose_name = "Customer health"

    def ready(self) -> None:
        from health import receivers  # noqa: F401 (connects the receivers)
