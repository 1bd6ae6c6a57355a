from django.urls import path

from playbooks import views

app_name = "playbooks"

urlpatterns = [
    path("tasks/", views.my_tasks, name="my-tasks"),
    path("tasks/<int:pk>/complete/", views.task_complete, name="task-complete"),
    path("board/", views.board, name="board"),
    path("assign/", views.assign, name="assign"),
    path("assign/bulk/", views.assign_bulk, name="assign-bulk"),
    path("assignments/<int:pk>/", views.assignment_detail, name="assignment"),
    path(
        "assignments/<int:pk>/reassign/",
        views.assignment_reassign,
        name="assignment-reassign",
    ),
    path(
        "assignments/<int:pk>/cancel/",
        views.assignment_cancel,
        name="assignment-cancel",
    ),
    path("effectiveness/", views.effectiveness, name="effectiveness"),
]
