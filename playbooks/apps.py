from django.apps import AppConfig


class PlaybooksConfig(AppConfig):
    name = "playbooks"
    verbose_name = "Playbooks"

    def ready(self) -> None:
        from health.signals import band_changed
        from playbooks.receivers import on_band_changed

        band_changed.connect(on_band_changed, dispatch_uid="playbooks.band_changed")
