from django.apps import AppConfig


class PlaybooksConfig(AppConfig):
    name = "playbooks"
    verbose_name = "Playbooks"

    def ready(self) -> None:
        from health.signals import bands_changed, demo_built, scores_written
        from playbooks import receivers

        bands_changed.connect(
            receivers.on_bands_changed, dispatch_uid="playbooks.bands_changed"
        )
        scores_written.connect(
            receivers.on_scores_written, dispatch_uid="playbooks.scores_written"
        )
        demo_built.connect(receivers.on_demo_built, dispatch_uid="playbooks.demo_built")
