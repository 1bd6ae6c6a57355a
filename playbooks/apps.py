from django.apps import AppConfig


class PlaybooksConfig(AppConfig):
    name = "playbooks"
    verbose_name = "Playbooks"

    def ready(self) -> None:
        from health.signals import band_changed, demo_built, scores_written
        from playbooks import receivers

        band_changed.connect(
            receivers.on_band_changed, dispatch_uid="playbooks.band_changed"
        )
        scores_written.connect(
            receivers.on_scores_written, dispatch_uid="playbooks.scores_written"
        )
        demo_built.connect(receivers.on_demo_built, dispatch_uid="playbooks.demo_built")
