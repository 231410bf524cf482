from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Snapshot schedules"

    def ready(self):
        from operations.services import periodic_task_register
        from schedules import views
        from vms import page_parts

        periodic_task_register("run due snapshot policies", "schedules.tasks.run_due", minutes=1)
        page_parts.register(vm_page=views.vm_page_part)
