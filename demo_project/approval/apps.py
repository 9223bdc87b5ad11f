from django.apps import AppConfig


class ApprovalConfig(AppConfig):
    name = "demo_project.approval"
    label = "approval_demo"
    verbose_name = "Approval demo"
