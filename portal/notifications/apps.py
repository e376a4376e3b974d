from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "portal.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # The apps below announce through signals, since they cannot import this one.
        from portal.experiments.signals import search_finished
        from portal.jobs.signals import job_finished, job_flagged
        from portal.notifications import receivers

        job_finished.connect(receivers.on_job_finished, dispatch_uid="notifications-job-finished")
        job_flagged.connect(receivers.on_job_flagged, dispatch_uid="notifications-job-flagged")
        search_finished.connect(
            receivers.on_search_finished, dispatch_uid="notifications-search-finished"
        )
