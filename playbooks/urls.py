from django.urls import path

from playbooks import views

app_name = "playbooks"

urlpatterns = [
    path("tasks/", views.my_tasks, name="my-tasks"),
    path("board/", views.board, name="board"),
]
